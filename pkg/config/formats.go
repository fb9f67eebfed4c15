package config

import (
	"fmt"
	"slices"
	"strings"
)

// Input says how a non-CSV input is read. Compression (gzip, zstd) and
// Excel workbooks are recognised by their first bytes, not configured.
type Input struct {
	// Sheet names the workbook sheet to read; empty: the first sheet.
	Sheet string `yaml:"sheet,omitempty" json:"sheet,omitempty"`
	// DateFormat is the Excel number format dates are shown in (for
	// example "dd/mm/yyyy"); empty: ISO yyyy-mm-dd.
	DateFormat string `yaml:"dateFormat,omitempty" json:"dateFormat,omitempty"`
}

// Output says how the merged output is written. The error report is
// always CSV: people open it in a spreadsheet.
type Output struct {
	Format      string `yaml:"format,omitempty" json:"format,omitempty"`           // csv (default), jsonl, parquet
	Compression string `yaml:"compression,omitempty" json:"compression,omitempty"` // none (default), gzip, zstd; csv and jsonl only
}

// Output formats and compressions.
const (
	FormatCSV     = "csv"
	FormatJSONL   = "jsonl"
	FormatParquet = "parquet"
	CompressNone  = "none"
	CompressGzip  = "gzip"
	CompressZstd  = "zstd"
)

// OutputFormat is output.format with the default filled in.
func (p *Settings) OutputFormat() string {
	if p.Output.Format == "" {
		return FormatCSV
	}
	return p.Output.Format
}

// OutputCompression is output.compression with the default filled in.
func (p *Settings) OutputCompression() string {
	if p.Output.Compression == "" {
		return CompressNone
	}
	return p.Output.Compression
}

func (p *Settings) validateFormats() []error {
	var errs []error
	f, c := p.OutputFormat(), p.OutputCompression()
	if !slices.Contains([]string{FormatCSV, FormatJSONL, FormatParquet}, f) {
		errs = append(errs, fmt.Errorf("output.format %q: must be csv, jsonl or parquet", f))
	}
	if !slices.Contains([]string{CompressNone, CompressGzip, CompressZstd}, c) {
		errs = append(errs, fmt.Errorf("output.compression %q: must be none, gzip or zstd", c))
	}
	if f == FormatParquet && c != CompressNone {
		errs = append(errs, fmt.Errorf("output.compression %q: Parquet compresses its own pages (ZSTD); set none", c))
	}
	for name, t := range p.Reference.Types {
		if !slices.Contains(p.Reference.Append, name) {
			errs = append(errs, fmt.Errorf("reference.types names %q, which reference.append does not", name))
		}
		if !slices.Contains([]string{"string", "integer", "number", "boolean"}, t) {
			errs = append(errs, fmt.Errorf("reference.types.%s %q: must be string, integer, number or boolean", name, t))
		}
	}
	if strings.ContainsAny(p.Input.DateFormat, "\n\r") {
		errs = append(errs, fmt.Errorf("input.dateFormat %q: must be one line", p.Input.DateFormat))
	}
	return errs
}
