package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/console"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// TestFeedFilterAndColumn: the list API and page take ?feed=, name each
// batch's feed, offer the configured feeds as filters, and refuse a feed
// the configuration lacks.
func TestFeedFilterAndColumn(t *testing.T) {
	eng := newEngine(t, config.Default(), false)
	now := time.Now().UTC()
	for i, feed := range []string{"orders", "returns", "orders", ""} {
		b := sluice.Batch{ID: fmt.Sprintf("%020d", i), Key: fmt.Sprintf("input/x/%d.csv", i), Name: fmt.Sprintf("f%d.csv", i),
			Feed: feed, State: sluice.StateCompleted, TotalChunks: 1, CreatedAt: now.Add(time.Duration(i) * time.Second), UpdatedAt: now}
		if _, _, err := eng.Ledger.CreateBatch(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	f := serve(t, eng, console.Options{Feeds: []string{"orders", "returns"}})
	for _, c := range []struct {
		feed string
		want []string
	}{
		{"", []string{"00000000000000000003", "00000000000000000002", "00000000000000000001", "00000000000000000000"}},
		{"orders", []string{"00000000000000000002", "00000000000000000000"}},
		{"returns", []string{"00000000000000000001"}},
		{"none", []string{"00000000000000000003"}},
	} {
		var bl console.BatchList
		get(t, f.url+"/api/batches?feed="+c.feed).json(t, &bl)
		if got := ids(bl.Batches); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("?feed=%s gave %v; want %v", c.feed, got, c.want)
		}
		for _, b := range bl.Batches {
			if c.feed != "" && c.feed != "none" && b.Feed != c.feed {
				t.Errorf("?feed=%s listed a batch of feed %q", c.feed, b.Feed)
			}
		}
	}
	// Paging through one feed: a page of one, then the next by cursor.
	var p1, p2 console.BatchList
	get(t, f.url+"/api/batches?feed=orders&limit=1").json(t, &p1)
	get(t, f.url+"/api/batches?feed=orders&limit=1&cursor="+p1.NextCursor).json(t, &p2)
	if len(p1.Batches) != 1 || len(p2.Batches) != 1 || p2.Batches[0].ID != "00000000000000000000" || p2.NextCursor != "" {
		t.Fatalf("paging feed orders: %v then %v (next %q)", ids(p1.Batches), ids(p2.Batches), p2.NextCursor)
	}
	wantError(t, get(t, f.url+"/api/batches?feed=prices"), http.StatusBadRequest, `unknown feed "prices"`)

	page := string(get(t, f.url+"/?feed=returns").body)
	for _, want := range []string{`id="feed-filter"`, `href="/?feed=orders"`, `<th>Feed</th>`, `<td data-label="Feed" class="feed">returns</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the list page lacks %s", want)
		}
	}
	if strings.Contains(page, "f0.csv") {
		t.Error("the page filtered to returns lists a batch of orders")
	}
}
