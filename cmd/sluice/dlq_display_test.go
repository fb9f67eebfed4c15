package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestDLQListShowsHiddenCharacters: a dead message's reason and body come
// from outside (a file name, a forged message), so `dlq list` shows bidi
// and invisible characters as <U+XXXX>, as the console and status do.
func TestDLQListShowsHiddenCharacters(t *testing.T) {
	var out bytes.Buffer
	err := printDead(&out, []sluice.DeadMessage{{
		ID: "m1", SentAt: time.Now(),
		Reason: "bad file invoice\u202Egpj.csv",
		Body:   []byte("{\"key\":\"input/a\u200Bb.csv\"}"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.ContainsRune(got, '\u202E') || strings.ContainsRune(got, '\u200B') {
		t.Fatalf("hidden characters printed as they are: %q", got)
	}
	if !strings.Contains(got, "<U+202E>") || !strings.Contains(got, "<U+200B>") {
		t.Fatalf("listing %q does not show the hidden characters", got)
	}
}
