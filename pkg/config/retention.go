package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Retention says how long a batch's files stay once the batch has ended.
// Intermediates are the chunks (<batch>/to_process/) and the per-chunk
// parts (<batch>/output/parts/, <batch>/output/errors/): nothing reads them
// after the merge, so by default they go when the batch ends. Outputs (the
// merged output, error report and manifest) and archives (the input under
// input_archive/) are what people come back for: kept by default. `sluice
// gc` removes what has expired; on AWS the bucket's lifecycle rules do.
type Retention struct {
	Intermediates Period `yaml:"intermediates" json:"intermediates"`
	Outputs       Period `yaml:"outputs" json:"outputs"`
	Archives      Period `yaml:"archives" json:"archives"`
	// Records is how long a batch's ledger records (its batch item and
	// rejected rows) live on DynamoDB, through the tables' TTL attribute
	// expiresAt; forever keeps them.
	Records Period `yaml:"records" json:"records"`
}

// Period is how long something is kept: a duration ("0s", "36h", "30d"),
// or "forever".
type Period struct {
	D       time.Duration
	Forever bool
}

// Expired reports whether something that ended at ended is past its period
// at now. Nothing kept forever ever expires.
func (p Period) Expired(ended, now time.Time) bool {
	return !p.Forever && !ended.IsZero() && !now.Before(ended.Add(p.D))
}

func (p Period) String() string {
	if p.Forever {
		return "forever"
	}
	if p.D%(24*time.Hour) == 0 && p.D > 0 {
		return strconv.FormatInt(int64(p.D/(24*time.Hour)), 10) + "d"
	}
	return p.D.String()
}

// ParsePeriod reads "forever", a Go duration, or a whole number of days
// such as "30d".
func ParsePeriod(s string) (Period, error) {
	s = strings.TrimSpace(s)
	if s == "forever" {
		return Period{Forever: true}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return Period{D: time.Duration(n) * 24 * time.Hour}, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return Period{}, fmt.Errorf("%q is not a period like 0s, 36h, 30d or forever", s)
	}
	return Period{D: d}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Period) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParsePeriod(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*p = v
	return nil
}

// MarshalJSON writes the period as text.
func (p Period) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }
