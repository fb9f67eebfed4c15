// Package oracle is a second, deliberately plain implementation of Sluice's
// default rules, used only by tests and benchmarks to check what the real
// pipeline produced. It shares no code with the pipeline: it parses with
// encoding/csv, checks columns with JSON Schemas (santhosh-tekuri/jsonschema)
// and joins against a map. It reads everything into memory and is slow by
// design; that is the price of being obviously right.
//
// The oracle is meant for well-formed CSV. Records that encoding/csv cannot
// parse are reported with rule "csv", but where the reader resumes after
// such an error need not match the pipeline's recovery.
package oracle

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// KeyColumn is the column joining the input to the reference.
const KeyColumn = "uuid"

// Rule names, as the pipeline reports them.
const (
	RuleFieldCount = "field_count"
	RuleRequired   = "required"
	RuleMaxLength  = "maxLength"
	RulePattern    = "pattern"
	RuleReference  = "reference"
	RuleCSV        = "csv"
)

// columnSchemas are the default per-column rules; a value is checked as a
// JSON string. Columns not listed are not checked.
var columnSchemas = map[string]string{
	"uuid":           `{"type": "string", "minLength": 1, "maxLength": 9, "pattern": "^[0-9]{9}$"}`,
	"Country":        `{"type": "string", "minLength": 1, "maxLength": 50}`,
	"Item Type":      `{"type": "string", "minLength": 1, "maxLength": 30}`,
	"Sales Channel":  `{"type": "string", "minLength": 1, "maxLength": 10}`,
	"Order Priority": `{"type": "string", "minLength": 1, "maxLength": 5}`,
	"Order Date":     `{"type": "string", "minLength": 1, "maxLength": 10}`,
	"Region":         `{"type": "string", "minLength": 1, "maxLength": 100}`,
	"Ship Date":      `{"type": "string", "minLength": 1, "maxLength": 10}`,
}

// Result is what the pipeline should produce for an input.
type Result struct {
	Header   []string   // input header + reference columns other than the key
	Rows     [][]string // output rows, in input order
	Rejected []Rejection
}

// Rejection is one input record the rules refused.
type Rejection struct {
	Line   int    // physical line where the record starts; the header is line 1
	Column string // "" for whole-record rules (field_count, csv)
	Rule   string
}

// Run applies the default rules to input, enriching from reference.
func Run(input, reference io.Reader) (Result, error) {
	ref, refCols, err := loadReference(reference)
	if err != nil {
		return Result{}, fmt.Errorf("oracle: reference: %w", err)
	}
	r := newReader(input)
	header, err := r.Read()
	if err != nil {
		return Result{}, fmt.Errorf("oracle: input header: %w", err)
	}
	key := slices.Index(header, KeyColumn)
	if key < 0 {
		return Result{}, fmt.Errorf("oracle: input header has no %q column", KeyColumn)
	}
	schemas := make([]*jsonschema.Schema, len(header))
	for i, col := range header {
		if s, ok := columnSchemas[col]; ok {
			if schemas[i], err = compile(s); err != nil {
				return Result{}, fmt.Errorf("oracle: schema for %q: %w", col, err)
			}
		}
	}

	res := Result{Header: append(slices.Clone(header), refCols...)}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return Result{}, fmt.Errorf("oracle: input: %w", err)
			}
			res.Rejected = append(res.Rejected, Rejection{Line: pe.StartLine, Rule: RuleCSV})
			continue
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(header) {
			res.Rejected = append(res.Rejected, Rejection{Line: line, Rule: RuleFieldCount})
			continue
		}
		if col, rule := check(header, schemas, rec); rule != "" {
			res.Rejected = append(res.Rejected, Rejection{Line: line, Column: col, Rule: rule})
			continue
		}
		vals, ok := ref[rec[key]]
		if !ok {
			res.Rejected = append(res.Rejected, Rejection{Line: line, Column: KeyColumn, Rule: RuleReference})
			continue
		}
		res.Rows = append(res.Rows, append(rec, vals...))
	}
	return res, nil
}

// check returns the first failing column of rec and its rule, or "", "".
func check(header []string, schemas []*jsonschema.Schema, rec []string) (column, rule string) {
	for i, s := range schemas {
		if s == nil {
			continue
		}
		err := s.Validate(rec[i])
		if err == nil {
			continue
		}
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return header[i], err.Error()
		}
		return header[i], ruleOf(rec[i], ve)
	}
	return "", ""
}

// ruleOf names a failure: required for an empty value, else the failing
// keyword, preferring maxLength to pattern when both fail.
func ruleOf(value string, ve *jsonschema.ValidationError) string {
	if value == "" {
		return RuleRequired
	}
	var maxLen, pattern, other bool
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		switch e.ErrorKind.(type) {
		case *kind.MaxLength:
			maxLen = true
		case *kind.Pattern:
			pattern = true
		case *kind.Group, *kind.Schema:
		default:
			other = true
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	switch {
	case maxLen:
		return RuleMaxLength
	case pattern:
		return RulePattern
	case other:
		return ve.Error()
	}
	return "unknown"
}

func compile(schema string) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	const url = "mem:///column.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// loadReference maps each key to the reference's other columns, in
// reference order. The first row of a duplicated key wins, as in the
// pipeline's catalog.
func loadReference(reference io.Reader) (map[string][]string, []string, error) {
	r := newReader(reference)
	header, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	key := slices.Index(header, KeyColumn)
	if key < 0 {
		return nil, nil, fmt.Errorf("header has no %q column", KeyColumn)
	}
	cols := slices.Delete(slices.Clone(header), key, key+1)
	ref := make(map[string][]string)
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return ref, cols, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if len(rec) != len(header) {
			line, _ := r.FieldPos(0)
			return nil, nil, fmt.Errorf("line %d: %d fields, header has %d", line, len(rec), len(header))
		}
		k := rec[key]
		if _, dup := ref[k]; !dup {
			ref[k] = slices.Delete(rec, key, key+1)
		}
	}
}

// newReader is encoding/csv with its defaults, except that records may have
// any field count (the rules check it) and a leading UTF-8 BOM is dropped.
func newReader(in io.Reader) *csv.Reader {
	br := bufio.NewReader(in)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\uFEFF")) {
		br.Discard(3)
	}
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	return r
}

// CSV encodes the header and rows in the pipeline's documented output
// format: comma-separated, "\n" after every record, and a field quoted (with
// "" for a quote) only when it holds a comma, a quote, \r or \n.
func (r Result) CSV() []byte {
	var b []byte
	b = appendRecord(b, r.Header)
	for _, row := range r.Rows {
		b = appendRecord(b, row)
	}
	return b
}

func appendRecord(b []byte, rec []string) []byte {
	for i, f := range rec {
		if i > 0 {
			b = append(b, ',')
		}
		if !needsQuotes(f) {
			b = append(b, f...)
			continue
		}
		b = append(b, '"')
		for j := 0; j < len(f); j++ {
			if f[j] == '"' {
				b = append(b, '"')
			}
			b = append(b, f[j])
		}
		b = append(b, '"')
	}
	return append(b, '\n')
}

func needsQuotes(f string) bool {
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}
