package metrics_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/metrics"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

// TestSamplingErrorsAreLogged: a ledger that cannot be read (here a closed
// database; on ECS it was a missing IAM permission) gives a warning, not
// an empty gauge nobody notices.
func TestSamplingErrorsAreLogged(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	metrics.New().Sample(ctx, time.Hour, nil, db.Ledger(), log)
	if !strings.Contains(buf.String(), `"msg":"sampling batches by state"`) || !strings.Contains(buf.String(), "closed") {
		t.Fatalf("no warning for a failed sample; log:\n%s", buf.String())
	}
}
