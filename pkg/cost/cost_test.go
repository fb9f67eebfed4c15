package cost

import (
	"math"
	"testing"
)

func TestEstimate(t *testing.T) {
	calls := map[string]float64{
		"SQS/SendMessage": 1e6, "S3/PutObject": 1000, "S3/GetObject": 1000, "S3/DeleteObject": 500,
		"DynamoDB/BatchGetItem": 10, "DynamoDB/BatchWriteItem": 4, "DynamoDB/UpdateItem": 2, "SESv2/SendEmail": 1000,
	}
	items := map[string]float64{"DynamoDB/BatchGetItem": 1000, "DynamoDB/BatchWriteItem": 100, "DynamoDB/UpdateItem": 2}
	lines, total := Estimate(calls, items)
	want := 0.40 + 0.005 + 0.0004 + 1000/1e6*0.125 + 100/1e6*0.625 + 2/1e6*0.625 + 0.10
	if math.Abs(total-want) > 1e-9 {
		t.Fatalf("total %v, want %v (%+v)", total, want, lines)
	}
	for _, l := range lines {
		if l.Op == "S3/DeleteObject" && l.Dollars != 0 {
			t.Fatal("deletes are free")
		}
		if l.Op == "DynamoDB/BatchGetItem" && (l.Units != 1000 || l.Unit != "RRU") {
			t.Fatalf("%+v", l)
		}
	}
}

func TestS3Request(t *testing.T) {
	for op, want := range map[string]float64{
		"UploadPartCopy": 0.005, "UploadPart": 0.005, "PutObject": 0.005, "CompleteMultipartUpload": 0.005,
		"HeadObject": 0.0004, "GetObject": 0.0004, "DeleteObject": 0, "AbortMultipartUpload": 0,
	} {
		if got := S3Request(op, 1000); math.Abs(got-want) > 1e-12 {
			t.Errorf("S3Request(%s, 1000) = %v, want %v", op, got, want)
		}
	}
}
