package sluice_test

import (
	"testing"

	"github.com/sluicehq/sluice/pkg/sluice"
)

func TestDisplayName(t *testing.T) {
	for in, want := range map[string]string{
		"orders.csv":            "orders.csv",
		"résumé 2026 (1).csv":   "résumé 2026 (1).csv",
		"日本語.csv":               "日本語.csv",
		"invoice\u202Egpj.csv":  "invoice<U+202E>gpj.csv",
		"\u2066x\u2069.csv":     "<U+2066>x<U+2069>.csv",
		"a\u200Bb\u200Dc\u200E": "a<U+200B>b<U+200D>c<U+200E>",
		"bom\uFEFF":             "bom<U+FEFF>",
		"nl\nx\tcr\r":           "nl<U+000A>x<U+0009>cr<U+000D>",
		"c1\u0085 del\u007F":    "c1<U+0085> del<U+007F>",
		"sep\u2028\u2029":       "sep<U+2028><U+2029>",
		"filler\u115F\u3164":    "filler<U+115F><U+3164>",
		"pua\uE000 nc\uFFFF":    "pua<U+E000> nc<U+FFFF>",
	} {
		if got := sluice.DisplayName(in); got != want {
			t.Errorf("DisplayName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sluice.DisplayText("line one\u202E\n\tline two"); got != "line one<U+202E>\n\tline two" {
		t.Errorf("DisplayText keeps lines and tabs: %q", got)
	}
	if r, ok := sluice.HiddenRune("ok\u2067.csv"); !ok || r != '\u2067' {
		t.Errorf("HiddenRune: %U %v", r, ok)
	}
	if _, ok := sluice.HiddenRune("ok.csv"); ok {
		t.Error("HiddenRune on a plain name")
	}
}
