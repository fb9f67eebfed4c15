package rules

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
)

func extraColumns() []config.Column {
	return []config.Column{
		{Name: "prio", Schema: map[string]any{"type": "string", "enum": []any{"C", "H", "L", "M"}}},
		{Name: "fixed", Schema: map[string]any{"const": "yes"}},
		{Name: "uni", Schema: map[string]any{"type": "string", "minLength": 2, "maxLength": 3}},
		{Name: "anyType", Schema: map[string]any{"type": []any{"string", "null"}, "pattern": "é"}},
		{Name: "notEmpty", Schema: map[string]any{"not": map[string]any{"const": ""}}}, // library path
		{Name: "num", Schema: map[string]any{"type": "integer"}},                       // no string passes
		{Name: "code", Schema: map[string]any{"pattern": "^[A-Z]+$"}},
		{Name: "digits", Schema: map[string]any{"pattern": "^\\d{2,4}$"}},
		{Name: "loose", Schema: map[string]any{"pattern": "[0-9]{3}"}}, // unanchored: the regexp decides
	}
}

// TestDirectChecksAgreeWithLibrary proves the compiled checks give the JSON
// Schema library's verdict on a large random corpus.
func TestDirectChecksAgreeWithLibrary(t *testing.T) {
	cols, err := Compile(append(config.Default().Columns, extraColumns()...))
	if err != nil {
		t.Fatal(err)
	}
	alphabet := []string{"0", "1", "9", "a", "Z", "A", " ", "é", "✓", "\U0001F600", "C", "yes", "-", ",", "\"", "\n", "\x00", "٣"}
	rng := rand.New(rand.NewPCG(7, 11))
	corpus := []string{"", "123456789", "12345678", "1234567890", "C", "yes", "éé", "ééé", "éééé", strings.Repeat("x", 50), strings.Repeat("x", 51), strings.Repeat("é", 50), strings.Repeat("é", 51)}
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		corpus = append(corpus, b.String())
	}
	for _, c := range cols {
		for _, v := range corpus {
			rule, _, ok := c.Check([]byte(v))
			if lib := c.ValidLibrary(v); ok != lib {
				t.Fatalf("column %s value %q: direct verdict %v (rule %q), library %v", c.Name, v, ok, rule, lib)
			}
			if !isASCII(v) {
				continue
			}
			// The worker's plain-row shortcuts, for ASCII values only.
			if rule2, _, ok2 := c.CheckText([]byte(v), true); ok2 != ok || rule2 != rule {
				t.Fatalf("column %s value %q: CheckText(ascii) %v %q, Check %v %q", c.Name, v, ok2, rule2, ok, rule)
			}
			if c.ASCIIOK([]byte(v)) && !ok {
				t.Fatalf("column %s value %q: ASCIIOK, but Check fails it (%s)", c.Name, v, rule)
			}
		}
	}
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestASCIIOKTakesLengthColumns: the shortcut applies to the default
// length-only columns (else the worker gains nothing), not to patterns.
func TestASCIIOKTakesLengthColumns(t *testing.T) {
	cols, err := Compile(config.Default().Columns)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cols {
		if got, want := c.ASCIIOK([]byte("ABC")), c.Name != "uuid"; got != want {
			t.Errorf("%s: ASCIIOK(ABC) = %v, want %v", c.Name, got, want)
		}
	}
}

func TestRuleNames(t *testing.T) {
	cols, err := Compile(append(config.Default().Columns, extraColumns()...))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Column{}
	for _, c := range cols {
		byName[c.Name] = c
	}
	cases := []struct{ col, v, rule, msgPart string }{
		{"uuid", "", RuleRequired, "uuid is empty"},
		{"uuid", "1234567890", "maxLength", "10 characters long, more than 9"},
		{"uuid", "12345678", "pattern", `"12345678" does not match ^[0-9]{9}$`},
		{"uuid", "12345678a", "pattern", "does not match"},
		{"Country", strings.Repeat("é", 51), "maxLength", "51 characters"},
		{"Country", strings.Repeat("é", 50), "", ""},
		{"prio", "X", "enum", "not one of"},
		{"fixed", "no", "const", "not the required value"},
		{"uni", "é", "minLength", "fewer than 2"},
		{"notEmpty", "", "not", "breaks its rule"},
		{"num", "12", "type", "breaks its rule"},
	}
	for _, c := range cases {
		rule, msg, ok := byName[c.col].Check([]byte(c.v))
		if rule != c.rule || ok != (c.rule == "") || !strings.Contains(msg, c.msgPart) {
			t.Errorf("%s %q: rule %q msg %q ok %v; want rule %q msg containing %q", c.col, c.v, rule, msg, ok, c.rule, c.msgPart)
		}
	}
	if byName["notEmpty"].Fast() || !byName["uuid"].Fast() {
		t.Error("wrong choice of direct checks vs library")
	}
	if byName["uuid"].class == nil || byName["code"].class == nil || byName["digits"].class == nil || byName["loose"].class != nil {
		t.Error("wrong choice of byte-class patterns")
	}
}

func TestInvalidSchema(t *testing.T) {
	_, err := Compile([]config.Column{{Name: "x", Schema: map[string]any{"minLength": "three"}}})
	if err == nil || !strings.Contains(err.Error(), `column "x"`) {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkCheckUUID(b *testing.B) {
	cols, _ := Compile(config.Default().Columns)
	v := []byte("535113847")
	for b.Loop() {
		cols[0].Check(v)
	}
}

// TestHugeMinLength: minLength times utf8.UTFMax overflowed int for a
// minLength of ~2.3e18 and more, and a one-letter value passed.
func TestHugeMinLength(t *testing.T) {
	for _, n := range []float64{3e18, 9e18, 4} {
		cols, err := Compile([]config.Column{{Name: "x", Schema: map[string]any{"type": "string", "minLength": n}}})
		if err != nil {
			t.Fatal(err)
		}
		if rule, _, ok := cols[0].CheckText([]byte("a"), true); ok || rule != "minLength" {
			t.Errorf("minLength %g: %q passed (rule %q)", n, "a", rule)
		}
	}
}
