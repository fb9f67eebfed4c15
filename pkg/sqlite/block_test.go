package sqlite

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/pkg/sluice"
)

func TestBlockRoundTrip(t *testing.T) {
	rows := []sluice.RowError{
		{Line: 2, Chunk: 0, Column: "", Rule: "field_count", Message: "", Raw: ""},
		{Line: 3, Chunk: 0, Column: "uuid", Rule: "pattern", Message: `uuid "x\x00y" does not match`, Raw: "a,\"b\nc\",é\r"},
		{Line: 1 << 40, Chunk: 1 << 20, Column: "Région", Rule: "maxLength", Message: "long", Raw: string(make([]byte, 70000))},
	}
	got, err := decodeBlock(nil, encodeBlockS2(rows))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, rows)
	}
}

// encodeBlockS2 is a block as AddRejects stores it.
func encodeBlockS2(rows []sluice.RowError) []byte { return packBlock(nil, encodeBlock(nil, rows)) }

// FuzzDecodeBlock: a damaged block is an error, never a panic or a row
// made up; what decodes encodes back to the same rows.
func FuzzDecodeBlock(f *testing.F) {
	f.Add(encodeBlockS2([]sluice.RowError{{Line: 7, Chunk: 1, Column: "c", Rule: "r", Message: "m", Raw: "x,y"}}))
	f.Add(encodeBlockS2(nil))
	f.Add([]byte{})
	f.Add([]byte{blockFormat, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := decodeBlock(nil, b)
		if err != nil {
			if !errors.Is(err, errBadBlock) {
				t.Fatalf("error %v is not errBadBlock", err)
			}
			return
		}
		again, err := decodeBlock(nil, encodeBlockS2(rows))
		if err != nil || !reflect.DeepEqual(again, rows) {
			t.Fatalf("re-encoded block decodes to %+v, %v; want %+v", again, err, rows)
		}
	})
}
