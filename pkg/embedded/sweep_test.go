package embedded_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/embedded"
	"github.com/sluicehq/sluice/pkg/fsblob"
)

// TestOpenSweepsDeadWritesBesideTheSubmit: what killed writes of another
// process left in the bucket (a half-staged input, a part) is gone once
// the engine closes, though the sweep ran beside a Submit instead of
// before it; the outbox's is gone at Open; the submitted file is staged
// and published whole.
func TestOpenSweepsDeadWritesBesideTheSubmit(t *testing.T) {
	data := t.TempDir()
	dead := []string{
		filepath.Join(data, "bucket", "input", fsblob.TempPrefix+"0badc0de-1"),
		filepath.Join(data, "bucket", "b0", "output", "parts", fsblob.TempPrefix+"0badc0de-2"),
	}
	mail := filepath.Join(data, "outbox", ".tmp-3")
	for _, p := range append(dead, mail) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "orders.csv")
	body := "uuid,Country,Item Type\n" + strings.Repeat("0b9a2a44-0ad4-4bd6-8c57-6a2e8bd1cf6e,France,Fruits\n", 1000)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := embedded.Open(data, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mail); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the outbox's dead temp file is there after Open (%v)", err)
	}
	sub, err := eng.Submit(t.Context(), path)
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	info, err := eng.Blobs.Stat(t.Context(), sub.Key)
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	if err != nil || !strings.Contains(info.ETag, hex.EncodeToString(sum[:])) {
		t.Fatalf("the submitted file's object: %+v, %v", info, err)
	}
	for _, p := range dead {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the engine (%v)", p, err)
		}
	}
}
