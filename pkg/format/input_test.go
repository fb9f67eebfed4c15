package format_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/format"
)

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// TestOpen decodes by magic bytes and bounds the decoded size.
func TestOpen(t *testing.T) {
	text := []byte("a,b\n1,2\n")
	enc, _ := zstd.NewWriter(nil)
	big := bytes.Repeat([]byte("x"), 1<<20)
	cases := []struct {
		name  string
		in    []byte
		limit int64
		kind  format.Kind
		want  string // decoded text, or a phrase of the BadInput reason
		bad   bool
	}{
		{"plain", text, 100, format.KindCSV, string(text), false},
		{"gzip", gz(text), 100, format.KindGzip, string(text), false},
		{"gzip two members", append(gz(text), gz(text)...), 100, format.KindGzip, string(text) + string(text), false},
		{"zstd", enc.EncodeAll(text, nil), 100, format.KindZstd, string(text), false},
		{"gzip at the limit", gz(big), 1 << 20, format.KindGzip, string(big), false},
		{"gzip over the limit", gz(big), 1<<20 - 1, format.KindGzip, "decompresses to more than 1048575 bytes", true},
		{"zstd over the limit", enc.EncodeAll(big, nil), 1000, format.KindZstd, "decompresses to more than 1000 bytes", true},
		{"gzip truncated", gz(big)[:500], 1 << 30, format.KindGzip, "is truncated", true},
		{"encrypted workbook", append([]byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, text...), 100, "", "password to open", true},
		{"zip not a workbook", []byte("PK\x03\x04 not really"), 100, "", "not an Excel .xlsx workbook", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decode(c.in, c.limit)
			var bad *format.BadInput
			if c.bad {
				if !errors.As(err, &bad) || !strings.Contains(bad.Reason, c.want) {
					t.Fatalf("error %v, want a BadInput with %q", err, c.want)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %.40q, %v; want %.40q", got, err, c.want)
			}
		})
	}
}

func decode(in []byte, limit int64) (string, error) {
	o, err := format.Open(bytes.NewReader(in), config.Default(), limit, "")
	if err != nil {
		return "", err
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	return string(b), err
}
