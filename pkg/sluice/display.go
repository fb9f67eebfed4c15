package sluice

import (
	"fmt"
	"strings"
	"unicode"
)

// DisplayName makes a file name, key or other short text safe to show to
// a person: every character that is invisible or changes how the text
// around it is drawn — bidirectional controls such as U+202E RIGHT-TO-LEFT
// OVERRIDE, zero-width and other format characters, control characters,
// line and paragraph separators — is replaced by a visible "<U+202E>".
// Without it, "invoice\u202Evsc.exe" shows as "invoiceexe.csv".
//
// Names are kept as they are in the ledger and the bucket (they are the
// object's identity); only what is shown is changed. The console, the
// emails and the CLI show names through this.
func DisplayName(s string) string {
	if strings.IndexFunc(s, hidden) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if hidden(r) {
			fmt.Fprintf(&b, "<U+%04X>", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// DisplayText is DisplayName for text of several lines (a failure reason):
// newlines and tabs stay, everything else DisplayName replaces is replaced.
func DisplayText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		parts := strings.Split(l, "\t")
		for j, p := range parts {
			parts[j] = DisplayName(p)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}

// HiddenRune reports the first character DisplayName would replace, so an
// upload can be refused with a message that names it.
func HiddenRune(s string) (rune, bool) {
	i := strings.IndexFunc(s, hidden)
	if i < 0 {
		return 0, false
	}
	for _, r := range s[i:] {
		return r, true
	}
	return 0, false
}

// hidden is a character that draws nothing or reorders what is drawn:
// controls (Cc), format characters (Cf: the bidi embeddings, overrides
// and isolates, zero-width joiners and spaces, the BOM, soft hyphen), line
// and paragraph separators, private-use characters, code points that
// draw nothing by default (Other_Default_Ignorable_Code_Point, such as
// U+115F HANGUL CHOSEONG FILLER), and the Unicode "noncharacters".
func hidden(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Other_Default_Ignorable_Code_Point) ||
		(r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}
