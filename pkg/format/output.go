package format

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/pkg/config"
)

// RowWriter writes the merged output one row at a time. The merger calls
// EndPart after each worker's part: Parquet closes a row group there.
type RowWriter interface {
	Write(fields [][]byte) error
	EndPart() error
	Close() error
}

// Ext is the output file's extension for the configuration.
func Ext(cfg *config.Pipeline) string {
	ext := cfg.OutputFormat()
	switch cfg.OutputCompression() {
	case config.CompressGzip:
		ext += ".gz"
	case config.CompressZstd:
		ext += ".zst"
	}
	return ext
}

// Compress wraps w in the configured compression; Close flushes it (and
// does not close w).
func Compress(w io.Writer, compression string) (io.WriteCloser, error) {
	switch compression {
	case config.CompressGzip:
		return gzip.NewWriter(w), nil
	case config.CompressZstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	}
	return nopCloser{w}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// NewRowWriter writes JSON Lines or Parquet with the given header (the
// output's: input columns, then appended reference columns).
func NewRowWriter(w io.Writer, cfg *config.Pipeline, header []string) (RowWriter, error) {
	switch cfg.OutputFormat() {
	case config.FormatJSONL:
		cw, err := Compress(w, cfg.OutputCompression())
		if err != nil {
			return nil, err
		}
		keys := make([][]byte, len(header))
		for i, h := range header {
			keys[i], _ = json.Marshal(h)
		}
		return &jsonlWriter{w: cw, keys: keys}, nil
	case config.FormatParquet:
		return newParquetWriter(w, cfg, header), nil
	}
	return nil, fmt.Errorf("format: no row writer for %q", cfg.OutputFormat())
}

// jsonlWriter writes one object per row, keys in header order; values
// stay strings, exactly the text of the CSV output's cell.
type jsonlWriter struct {
	w    io.WriteCloser
	keys [][]byte
	line []byte
}

func (j *jsonlWriter) Write(fields [][]byte) error {
	if len(fields) != len(j.keys) {
		return fmt.Errorf("format: row has %d fields, header %d", len(fields), len(j.keys))
	}
	j.line = append(j.line[:0], '{')
	for i, f := range fields {
		if i > 0 {
			j.line = append(j.line, ',')
		}
		j.line = append(j.line, j.keys[i]...)
		j.line = append(j.line, ':')
		v, _ := json.Marshal(string(f))
		j.line = append(j.line, v...)
	}
	j.line = append(j.line, '}', '\n')
	_, err := j.w.Write(j.line)
	return err
}

func (j *jsonlWriter) EndPart() error { return nil }
func (j *jsonlWriter) Close() error   { return j.w.Close() }

// ColumnTypes gives each output column its JSON Schema type: the column
// rule's "type" for input columns, reference.types for appended ones.
func ColumnTypes(cfg *config.Pipeline, header []string) []string {
	types := map[string]string{}
	for _, c := range cfg.Columns {
		types[c.Name] = schemaType(c.Schema["type"])
	}
	if cfg.Enriches() {
		for _, a := range cfg.Reference.Append {
			types[a] = cfg.Reference.Types[a]
		}
	}
	out := make([]string, len(header))
	for i, h := range header {
		out[i] = types[h]
	}
	return out
}

// schemaType reads "integer" or ["integer", "null"].
func schemaType(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok && s != "null" {
				return s
			}
		}
	}
	return ""
}

// parquetWriter writes one row group per part, ZSTD-compressed; every
// column is optional, so an empty cell is a null rather than a zero.
type parquetWriter struct {
	w     *parquet.Writer
	types []string // per header column
	order []int    // schema column i holds header column order[i]
	names []string
	buf   []parquet.Row
}

func newParquetWriter(w io.Writer, cfg *config.Pipeline, header []string) *parquetWriter {
	types := ColumnTypes(cfg, header)
	group := parquet.Group{}
	index := map[string]int{}
	for i, h := range header {
		index[h] = i
		switch types[i] {
		case "integer":
			group[h] = parquet.Optional(parquet.Int(64))
		case "number":
			group[h] = parquet.Optional(parquet.Leaf(parquet.DoubleType))
		default:
			group[h] = parquet.Optional(parquet.String())
		}
	}
	schema := parquet.NewSchema("sluice", group)
	p := &parquetWriter{types: types, names: header}
	for _, f := range schema.Fields() {
		p.order = append(p.order, index[f.Name()])
	}
	p.w = parquet.NewWriter(w, schema, parquet.Compression(&parquet.Zstd))
	return p
}

func (p *parquetWriter) Write(fields [][]byte) error {
	if len(fields) != len(p.names) {
		return fmt.Errorf("format: row has %d fields, header %d", len(fields), len(p.names))
	}
	// Rows are written in batches (a row at a time costs parquet-go more
	// than the encoding); byte values are copied, as the caller reuses fields.
	row := make(parquet.Row, 0, len(p.order))
	for col, h := range p.order {
		v, err := parquetValue(p.types[h], fields[h])
		if err != nil {
			return &BadInput{Reason: fmt.Sprintf("column %q: %v", p.names[h], err)}
		}
		if v.IsNull() {
			row = append(row, v.Level(0, 0, col))
		} else {
			row = append(row, v.Clone().Level(0, 1, col))
		}
	}
	p.buf = append(p.buf, row)
	if len(p.buf) == 1024 {
		return p.flushRows()
	}
	return nil
}

func (p *parquetWriter) flushRows() error {
	_, err := p.w.WriteRows(p.buf)
	p.buf = p.buf[:0]
	return err
}

func parquetValue(typ string, f []byte) (parquet.Value, error) {
	if len(f) == 0 {
		return parquet.NullValue(), nil
	}
	switch typ {
	case "integer":
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			x, ferr := strconv.ParseFloat(string(f), 64)
			if ferr != nil || x != math.Trunc(x) || math.Abs(x) > 1<<63-1 {
				return parquet.Value{}, fmt.Errorf("%q is not a 64-bit integer", f)
			}
			n = int64(x)
		}
		return parquet.Int64Value(n), nil
	case "number":
		x, err := strconv.ParseFloat(string(f), 64)
		if err != nil {
			return parquet.Value{}, fmt.Errorf("%q is not a number", f)
		}
		return parquet.DoubleValue(x), nil
	}
	return parquet.ByteArrayValue(f), nil
}

func (p *parquetWriter) EndPart() error {
	if err := p.flushRows(); err != nil {
		return err
	}
	return p.w.Flush()
}

func (p *parquetWriter) Close() error {
	if err := p.flushRows(); err != nil {
		return err
	}
	return p.w.Close()
}
