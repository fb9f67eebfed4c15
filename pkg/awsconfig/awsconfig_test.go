package awsconfig_test

import (
	"io"
	"testing"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/dynamoledger"
	"github.com/sluicehq/sluice/pkg/sluice"
)

func TestMain(m *testing.M) { awstest.Main(m, awstest.DynamoDB, awstest.S3) }

// TestCountsCallsAndItems talks to the DynamoDB emulator through a config
// loaded the way the services load theirs.
func TestCountsCallsAndItems(t *testing.T) {
	env := awstest.Shared(t)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", env.Endpoint(awstest.DynamoDB))
	t.Setenv("AWS_REGION", awstest.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	var counts awsconfig.Counts
	cfg, err := awsconfig.Load(t.Context(), &counts)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamoledger.New(cfg, dynamoledger.DefaultTables("awscfg-"), dynamoledger.WithCacheSize(-1))
	if err := db.CreateTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 250)
	for i := range keys {
		keys[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	rows := [][]string{}
	for _, k := range keys[:30] {
		rows = append(rows, []string{k, "v"})
	}
	i := 0
	cat := db.Catalog()
	v, err := cat.Load(t.Context(), sluice.RefSource{ID: "20260101T000000.000000Z-k", Columns: []string{"k", "v"}, Next: func() ([]string, error) {
		if i == len(rows) {
			return nil, io.EOF
		}
		i++
		return rows[i-1], nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := cat.Version(t.Context(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	before := counts.Items()["DynamoDB/BatchGetItem"]
	if _, err := ref.Lookup(t.Context(), keys); err != nil {
		t.Fatal(err)
	}
	calls, items := counts.Snapshot(), counts.Items()
	if got := items["DynamoDB/BatchGetItem"] - before; got != 250 {
		t.Fatalf("BatchGetItem items counted: %d, want the 250 keys asked for (calls %v)", got, calls)
	}
	if calls["DynamoDB/BatchGetItem"] < 3 || calls["DynamoDB/CreateTable"] == 0 {
		t.Fatalf("calls %v", calls)
	}
	if items["DynamoDB/BatchWriteItem"] < 30 {
		t.Fatalf("BatchWriteItem items %d, want at least the 30 rows loaded", items["DynamoDB/BatchWriteItem"])
	}
}
