// Package rules checks rows against the per-column rules. The JSON Schema in
// the configuration is the source of truth: every schema is compiled with
// santhosh-tekuri/jsonschema, and the keywords a CSV value can meet (type
// string, minLength, maxLength, pattern, enum, const) are turned into
// direct checks on the bytes, so a row costs no allocation. A schema that
// uses any other keyword is validated by the library itself, value by value.
// Tests prove the two paths give the same verdicts.
package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/sluicehq/sluice/pkg/config"
)

// Rule names, as they appear in the error report and the metrics.
const (
	RuleFieldCount = "field_count" // the row has another number of fields than the header
	RuleCSV        = "csv"         // the row is not well-formed CSV
	RuleEncoding   = "encoding"    // the row is not valid UTF-8
	RuleRequired   = "required"    // an empty value where one is required
	RuleReference  = "reference"   // the key is not in the reference data
)

// Violation is why one row is rejected.
type Violation struct {
	Column  string
	Rule    string
	Message string
}

// Column is one compiled column rule.
type Column struct {
	Name   string
	schema *jsonschema.Schema
	fast   bool // the direct checks below are the whole schema

	minLen, maxLen int // -1: not set
	pattern        *regexp.Regexp
	// class, when set, is the whole pattern: ^[set]{min,max}$ over ASCII,
	// checked byte by byte instead of by the regexp engine.
	class              *[256]bool
	classMin, classMax int
	enum               [][]byte
	hasEnum            bool
	constVal           []byte
	hasConst           bool
	// lenOnly: the direct checks are only lengths, which an ASCII value
	// meets when its length is in [lenMin, lenMax] (ASCIIOK).
	lenOnly        bool
	lenMin, lenMax int
}

// knownKeywords are the keywords the direct checks implement, plus those
// that never constrain a string.
var knownKeywords = map[string]bool{
	"type": true, "minLength": true, "maxLength": true, "pattern": true, "enum": true, "const": true,
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true, "examples": true, "default": true,
}

// Compile compiles each column's schema.
func Compile(cols []config.Column) ([]*Column, error) {
	out := make([]*Column, 0, len(cols))
	for _, c := range cols {
		col, err := compileColumn(c)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		out = append(out, col)
	}
	return out, nil
}

func compileColumn(c config.Column) (*Column, error) {
	raw, err := json.Marshal(c.Schema)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	url := "sluice:///columns/" + strings.ReplaceAll(c.Name, " ", "%20") + ".json"
	if err := comp.AddResource(url, doc); err != nil {
		return nil, err
	}
	sch, err := comp.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON Schema: %w", err)
	}
	col := &Column{Name: c.Name, schema: sch, minLen: -1, maxLen: -1, fast: true}
	m, _ := doc.(map[string]any)
	if m == nil {
		col.fast = false // true/false schemas: rare, let the library say
		return col, nil
	}
	for k, v := range m {
		if !knownKeywords[k] {
			col.fast = false
			continue
		}
		switch k {
		case "type":
			if !typeAllowsString(v) {
				col.fast = false
			}
		case "minLength":
			col.minLen = intOf(v)
		case "maxLength":
			col.maxLen = intOf(v)
		case "pattern":
			s, _ := v.(string)
			// The library compiled it with Go's regexp already; same engine here.
			col.pattern = regexp.MustCompile(s)
			col.class, col.classMin, col.classMax = simpleClass(s)
		case "enum":
			col.hasEnum = true
			for _, e := range v.([]any) {
				if s, ok := e.(string); ok {
					col.enum = append(col.enum, []byte(s))
				}
			}
		case "const":
			s, ok := v.(string)
			col.hasConst = true
			if ok {
				col.constVal = []byte(s)
			} else {
				col.constVal = nil // a non-string const no string can meet
			}
		}
	}
	col.lenOnly = col.fast && col.pattern == nil && !col.hasEnum && !col.hasConst
	col.lenMin, col.lenMax = max(col.minLen, 0), col.maxLen
	if col.maxLen < 0 {
		col.lenMax = math.MaxInt
	}
	return col, nil
}

// ASCIIOK reports, for an ASCII value, that the column's rules hold
// without calling CheckText: true only when the rules are lengths alone
// and the value's length meets them. False says nothing; call CheckText.
// It is small enough to be inlined into the worker's per-field loop.
func (c *Column) ASCIIOK(v []byte) bool {
	return c.lenOnly && len(v) >= c.lenMin && len(v) <= c.lenMax
}

func typeAllowsString(v any) bool {
	switch t := v.(type) {
	case string:
		return t == "string"
	case []any:
		for _, e := range t {
			if e == "string" {
				return true
			}
		}
	}
	return false
}

func intOf(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	}
	return -1
}

// Check returns the first rule the value breaks, or ok.
func (c *Column) Check(v []byte) (rule, msg string, ok bool) { return c.CheckText(v, false) }

// CheckText is Check for a value the caller may know to be ASCII (a
// plain row, csvscan.SplitPlain): its length in characters is then its
// length in bytes, and no rune is counted.
func (c *Column) CheckText(v []byte, ascii bool) (rule, msg string, ok bool) {
	if !c.fast {
		return c.checkLibrary(v)
	}
	if c.minLen > 0 && len(v) == 0 {
		return RuleRequired, fmt.Sprintf("%s is empty", c.Name), false
	}
	if c.maxLen >= 0 && len(v) > c.maxLen { // bytes ≥ runes: count runes only when it may matter
		if n := runes(v, ascii); n > c.maxLen {
			return "maxLength", fmt.Sprintf("%s is %d characters long, more than %d", c.Name, n, c.maxLen), false
		}
	}
	if c.minLen > 0 && c.minLen > len(v)/utf8.UTFMax { // not len(v) < minLen*UTFMax: that overflows for a huge minLength
		if n := runes(v, ascii); n < c.minLen {
			return "minLength", fmt.Sprintf("%s is %d characters long, fewer than %d", c.Name, n, c.minLen), false
		}
	}
	if c.pattern != nil && !c.matches(v) {
		return "pattern", fmt.Sprintf("%s %s does not match %s", c.Name, quote(v), c.pattern), false
	}
	if c.hasEnum && !containsBytes(c.enum, v) {
		return "enum", fmt.Sprintf("%s %s is not one of the allowed values", c.Name, quote(v)), false
	}
	if c.hasConst && (c.constVal == nil || !bytes.Equal(c.constVal, v)) {
		return "const", fmt.Sprintf("%s %s is not the required value", c.Name, quote(v)), false
	}
	return "", "", true
}

func runes(v []byte, ascii bool) int {
	if ascii {
		return len(v)
	}
	return utf8.RuneCount(v)
}

func containsBytes(set [][]byte, v []byte) bool {
	for _, s := range set {
		if bytes.Equal(s, v) {
			return true
		}
	}
	return false
}

// checkLibrary validates through the JSON Schema library.
func (c *Column) checkLibrary(v []byte) (string, string, bool) {
	err := c.schema.Validate(string(v))
	if err == nil {
		return "", "", true
	}
	rule := "schema"
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		leaf := ve
		for len(leaf.Causes) > 0 {
			leaf = leaf.Causes[0]
		}
		if p := leaf.ErrorKind.KeywordPath(); len(p) > 0 {
			rule = p[0]
		} else if _, isNot := leaf.ErrorKind.(*kind.Not); isNot {
			rule = "not"
		}
		if _, isMin := leaf.ErrorKind.(*kind.MinLength); isMin && len(v) == 0 {
			rule = RuleRequired
		}
	}
	return rule, fmt.Sprintf("%s %s breaks its rule: %s", c.Name, quote(v), oneLine(err.Error())), false
}

// ValidLibrary is the JSON Schema library's own verdict, for tests that
// prove the direct checks agree with it.
func (c *Column) ValidLibrary(v string) bool { return c.schema.Validate(v) == nil }

// Fast reports whether the column uses the direct checks.
func (c *Column) Fast() bool { return c.fast }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func quote(v []byte) string {
	const max = 60
	if utf8.RuneCount(v) > max {
		r := []rune(string(v))
		return fmt.Sprintf("%q…", string(r[:max]))
	}
	return fmt.Sprintf("%q", v)
}

func (c *Column) matches(v []byte) bool {
	if c.class == nil {
		return c.pattern.Match(v)
	}
	if len(v) < c.classMin || (c.classMax >= 0 && len(v) > c.classMax) {
		return false
	}
	for _, b := range v {
		if !c.class[b] {
			return false
		}
	}
	return true
}

// simpleClass recognises patterns that are one anchored repetition of an
// ASCII character class, such as ^[0-9]{9}$ or ^[A-Z]+$, the common shape of
// ID columns. It returns nil for anything else, which the regexp checks.
// Since the class is ASCII, a byte outside it (any UTF-8 byte too) fails,
// exactly as the regexp would.
func simpleClass(pattern string) (*[256]bool, int, int) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, 0, 0
	}
	if re.Op != syntax.OpConcat || len(re.Sub) != 3 || re.Sub[0].Op != syntax.OpBeginText || re.Sub[2].Op != syntax.OpEndText {
		return nil, 0, 0
	}
	rep := re.Sub[1]
	lo, hi := 1, 1
	cls := rep
	switch rep.Op {
	case syntax.OpCharClass:
	case syntax.OpStar:
		lo, hi, cls = 0, -1, rep.Sub[0]
	case syntax.OpPlus:
		lo, hi, cls = 1, -1, rep.Sub[0]
	case syntax.OpRepeat:
		lo, hi, cls = rep.Min, rep.Max, rep.Sub[0]
	default:
		return nil, 0, 0
	}
	if cls.Op != syntax.OpCharClass {
		return nil, 0, 0
	}
	var set [256]bool
	for i := 0; i+1 < len(cls.Rune); i += 2 {
		if cls.Rune[i+1] > 0x7f {
			return nil, 0, 0
		}
		for r := cls.Rune[i]; r <= cls.Rune[i+1]; r++ {
			set[r] = true
		}
	}
	return &set, lo, hi
}
