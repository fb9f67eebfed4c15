package service

import (
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/config"
)

// TestEveryVarIsInTheREADME keeps the README's settings table honest.
func TestEveryVarIsInTheREADME(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, v := range Vars {
		d := "—"
		if v.Default != "" {
			d = "`" + v.Default + "`"
		}
		row := "| `" + v.Name + "` | " + d + " |"
		if !strings.Contains(readme, row) {
			t.Errorf("README lacks the row %q", row)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"SLUICE_BUCKET": "b", "SLUICE_WAIT": "5s", "SLUICE_MAIL_TO": "a@x, b@y"}
	c, err := LoadConfig("worker", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Wait.Seconds() != 5 || len(c.MailTo) != 2 || c.Visibility.Minutes() != 2 || c.Concurrency < 1 || c.Backend != "aws" {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []map[string]string{
		{}, // no bucket
		{"SLUICE_BUCKET": "b", "SLUICE_WAIT": "30s"},      // over the SQS maximum
		{"SLUICE_BUCKET": "b", "SLUICE_LINK_TTL": "200h"}, // over SigV4's week
		{"SLUICE_BUCKET": "b", "SLUICE_CONCURRENCY": "x"},
		{"SLUICE_BACKEND": "gcp"},
	} {
		if _, err := LoadConfig("worker", func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	if _, err := LoadConfig("worker", func(k string) string { return map[string]string{"SLUICE_BACKEND": "local"}[k] }); err != nil {
		t.Errorf("local backend needs no bucket: %v", err)
	}
}

// The services on AWS chunk by config.AWSChunkRows unless told otherwise,
// so that the merge's parts reach S3's 5 MiB copy minimum; locally not.
func TestPipelineConfigChunkRowsByBackend(t *testing.T) {
	for backend, want := range map[string]int{"aws": config.AWSChunkRows, "local": config.Default().ChunkRows} {
		p, err := pipelineConfig(Config{Backend: backend})
		if err != nil || p.ChunkRows != want {
			t.Errorf("%s: chunkRows %d (%v), want %d", backend, p.ChunkRows, err, want)
		}
	}
}
