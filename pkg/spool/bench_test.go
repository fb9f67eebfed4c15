package spool_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/spool"
)

// BenchmarkAppend appends chunks of about 350 KB of output (a 2000-row
// chunk of the seed's shape) and 2 KB of errors, in order, to one batch's
// spool on a real bucket and SQLite ledger: the write, both running
// hashes, the chunk digest and the state record.
func BenchmarkAppend(b *testing.B) {
	d := newDirB(b)
	s := spool.New(d.blobs, d.db.Ledger())
	s.Wait = time.Second
	out := bytes.Repeat([]byte("12345,Europe,Spain,Cosmetics,Online,H,2014-10-18,123456789,2014-11-12,1000,437.20,263.33\n"), 3900)
	errs := bytes.Repeat([]byte("17,Region,required,is empty,\"x,y\"\n"), 60)
	b.SetBytes(int64(len(out) + len(errs)))
	sb := batchNamed(fmt.Sprintf("bench%d", b.N), true)
	b.ResetTimer()
	for i := range b.N {
		if ok, err := s.Append(b.Context(), sb, i, out, errs); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
