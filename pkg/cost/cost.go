// Package cost turns counted AWS API calls into dollars at list prices, so
// the benchmark can say what a million rows cost on the AWS path. Only
// request charges are counted: storage, data transfer and Fargate compute
// are left out (they do not depend on the code's call pattern).
package cost

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Prices are us-east-1 list prices in dollars, as published by AWS in
// 2025 (DynamoDB on-demand after the November 2024 reduction).
var Prices = struct {
	SQSPerMillionRequests float64
	S3PerThousandPut      float64 // PUT, COPY, POST, LIST
	S3PerThousandGet      float64 // GET, HEAD and the rest
	DDBPerMillionWRU      float64
	DDBPerMillionRRU      float64
	SESPerThousandEmails  float64
}{0.40, 0.005, 0.0004, 0.625, 0.125, 0.10}

// Line is one priced operation.
type Line struct {
	Op      string // "Service/Operation"
	Calls   float64
	Units   float64 // what is billed: requests, items, emails
	Unit    string
	Dollars float64
}

var s3Put = map[string]bool{"PutObject": true, "CopyObject": true, "UploadPart": true, "UploadPartCopy": true,
	"CreateMultipartUpload": true, "CompleteMultipartUpload": true, "ListObjectsV2": true, "ListObjects": true,
	"PutBucketNotificationConfiguration": true, "CreateBucket": true}
var s3Free = map[string]bool{"DeleteObject": true, "DeleteObjects": true, "AbortMultipartUpload": true}
var ddbWrite = map[string]bool{"PutItem": true, "UpdateItem": true, "DeleteItem": true, "BatchWriteItem": true}

// S3Request prices n requests of one S3 operation: PUT-class (PUT, COPY,
// POST, LIST, and so UploadPart and UploadPartCopy, which cost the same
// whatever bytes they carry or copy), free (DELETE, abort) or GET-class.
func S3Request(op string, n float64) float64 {
	switch {
	case s3Free[op]:
		return 0
	case s3Put[op]:
		return n / 1e3 * Prices.S3PerThousandPut
	}
	return n / 1e3 * Prices.S3PerThousandGet
}

// Estimate prices calls (by "Service/Operation") and the items DynamoDB
// calls touched. Every DynamoDB item is taken as one unit (writes under
// 1 KB, strongly consistent reads under 4 KB): an upper bound for Sluice's
// small items.
func Estimate(calls, items map[string]float64) ([]Line, float64) {
	var out []Line
	total := 0.0
	for op, n := range calls {
		svc, name, _ := strings.Cut(op, "/")
		l := Line{Op: op, Calls: n, Units: n, Unit: "requests"}
		switch strings.ToLower(svc) {
		case "sqs":
			l.Dollars = n / 1e6 * Prices.SQSPerMillionRequests
		case "s3":
			l.Dollars = S3Request(name, n)
		case "dynamodb":
			u := n
			if it, ok := items[op]; ok {
				u = it
			}
			l.Units = u
			if ddbWrite[name] {
				l.Unit, l.Dollars = "WRU", u/1e6*Prices.DDBPerMillionWRU
			} else {
				l.Unit, l.Dollars = "RRU", u/1e6*Prices.DDBPerMillionRRU
			}
		case "sesv2":
			if name == "SendEmail" {
				l.Unit, l.Dollars = "emails", n/1e3*Prices.SESPerThousandEmails
			}
		}
		total += l.Dollars
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Dollars != out[j].Dollars {
			return out[i].Dollars > out[j].Dollars
		}
		return out[i].Op < out[j].Op
	})
	return out, total
}

// Print writes the table and the cost per million rows.
func Print(w io.Writer, lines []Line, total float64, rows int) {
	fmt.Fprintf(w, "%-40s %10s %12s %-9s %12s\n", "AWS operation", "calls", "billed", "unit", "dollars")
	for _, l := range lines {
		fmt.Fprintf(w, "%-40s %10.0f %12.0f %-9s %12.6f\n", l.Op, l.Calls, l.Units, l.Unit, l.Dollars)
	}
	fmt.Fprintf(w, "%-40s %10s %12s %-9s %12.6f\n", "total", "", "", "", total)
	if rows > 0 {
		fmt.Fprintf(w, "cost per 1M rows: $%.4f (request charges at us-east-1 list prices)\n", total/float64(rows)*1e6)
	}
}
