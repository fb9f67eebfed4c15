package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const twoFeeds = `
mail: {from: sluice@example.com, to: [ops@example.com]}
feeds:
  - name: orders
    prefix: orders/
    reference: {dataset: financials}
    mail: {to: [orders-team@example.com]}
  - name: returns
    prefix: returns/
    delimiter: ";"
    chunkRows: 50
    reference: {dataset: financials, key: uuid, append: [unitPrice], onMissing: empty}
    output: {format: csv, compression: none}
  - name: eu-returns
    prefix: returns/eu/
    reference: {key: "", append: []}
    columns: [{name: id, schema: {type: string}}]
`

func TestFeedsInherit(t *testing.T) {
	p, err := Parse([]byte(twoFeeds))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.FeedNames(), ","); got != "orders,returns,eu-returns" {
		t.Fatalf("feeds %s", got)
	}
	o, err := p.ForFeed("orders")
	if err != nil {
		t.Fatal(err)
	}
	if o.Delimiter != "," || o.ChunkRows != 10000 || len(o.Columns) != 8 || o.Mail.From != "sluice@example.com" ||
		strings.Join(o.Mail.To, ",") != "orders-team@example.com" || o.Dataset() != "financials" || o.Reference.Key != "uuid" {
		t.Fatalf("orders did not inherit the top level: %+v", o.Settings)
	}
	r, _ := p.ForFeed("returns")
	if r.Delim() != ';' || r.ChunkRows != 50 || r.Reference.OnMissing != "empty" || len(r.Reference.Append) != 1 || r.Mail.To[0] != "ops@example.com" {
		t.Fatalf("returns: %+v", r.Settings)
	}
	e, _ := p.ForFeed("eu-returns")
	if e.Enriches() || len(e.Columns) != 1 {
		t.Fatalf("eu-returns: %+v", e.Settings)
	}
	if p.Mail.To[0] != "ops@example.com" || len(p.Columns) != 8 {
		t.Fatalf("a feed changed the top level: %+v", p.Settings)
	}
	if got := strings.Join(p.Datasets(), ","); got != "financials" {
		t.Fatalf("datasets %s", got)
	}
	if _, err := p.ForFeed("nope"); err == nil || !strings.Contains(err.Error(), "orders, returns, eu-returns") {
		t.Fatalf("unknown feed: %v", err)
	}
}

func TestRouteLongestPrefix(t *testing.T) {
	p, err := Parse([]byte(twoFeeds))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, feed, err string }{
		{"orders/a.csv", "orders", ""},
		{"returns/a.csv", "returns", ""},
		{"returns/eu/a.csv", "eu-returns", ""},
		{"returns/euro.csv", "returns", ""},
		{"prices.csv", "", `"orders/" (orders), "returns/" (returns), "returns/eu/" (eu-returns)`},
		{"Orders/a.csv", "", "no feed claims"},
	} {
		got, err := p.Route(c.key)
		if got != c.feed || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("Route(%q) = %q, %v; want %q, %q", c.key, got, err, c.feed, c.err)
		}
	}
}

func TestNoFeedsIsOneDefaultFeed(t *testing.T) {
	p := Default()
	fs := p.FeedList()
	if len(fs) != 1 || fs[0].Name != "default" || fs[0].Prefix != "" {
		t.Fatalf("feeds %+v", fs)
	}
	if f, err := p.Route("any/thing.csv"); f != "default" || err != nil {
		t.Fatalf("route %q %v", f, err)
	}
	d, err := p.ForFeed("")
	if err != nil || d.Feed != "default" || d.Dataset() != "default" {
		t.Fatalf("ForFeed(\"\"): %+v %v", d, err)
	}
	if strings.Contains(string(DefaultYAML()), "feeds:") {
		t.Fatal("the printed default grew a feeds: key")
	}
	var n yaml.Node
	if err := yaml.Unmarshal(DefaultYAML(), &n); err != nil {
		t.Fatal(err)
	}
}

func TestFeedErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"feeds: [{name: a, prefix: x/}, {name: a, prefix: y/}]", `name "a" appears twice`},
		{"feeds: [{name: a, prefix: x/}, {name: b, prefix: x/}]", `both claim the prefix "x/"`},
		{"feeds: [{name: 'a b', prefix: x/}]", `feed name "a b"`},
		{"feeds: [{name: a, prefix: x/, chunkRows: 0}]", "feeds[0] a: chunkRows 0"},
		{"feeds: [{name: a, prefix: x/, colums: []}]", "field colums not found"},
		{"feeds: [{name: a, prefix: x/, retention: {}}]", "field retention not found"},
		{"feeds: [{name: a, prefix: /x}]", "must be relative"},
		{"feeds: [{name: a, prefix: x/, reference: {dataset: '../x'}}]", `reference.dataset name "../x"`},
		{"feeds: [{name: a, prefix: x/, output: {format: xml}}]", `output.format "xml"`},
	} {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.yaml, err, c.want)
		}
	}
}

func TestForDataset(t *testing.T) {
	p, err := Parse([]byte(twoFeeds))
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.ForDataset("financials")
	if err != nil {
		t.Fatal(err)
	}
	if d.Reference.Key != "uuid" || d.Delim() != ',' || len(d.Reference.Append) != 6 {
		t.Fatalf("financials loads with %+v", d.Reference)
	}
	if _, err := p.ForDataset("default"); err == nil || !strings.Contains(err.Error(), "in use: financials") {
		t.Fatalf("a dataset no feed uses: %v", err)
	}
	if _, err := Parse([]byte("feeds: [{name: a, prefix: a/, reference: {dataset: x}}, {name: b, prefix: b/, reference: {dataset: x, key: id, append: []}}]")); err == nil || !strings.Contains(err.Error(), "one key column") {
		t.Fatalf("two keys for one dataset: %v", err)
	}
}

func TestOverrideMail(t *testing.T) {
	p, err := Parse([]byte(twoFeeds))
	if err != nil {
		t.Fatal(err)
	}
	p.OverrideMail("ses@example.com", []string{"env@example.com"}, 0)
	o, _ := p.ForFeed("orders")
	r, _ := p.ForFeed("returns")
	if o.Mail.To[0] != "orders-team@example.com" || r.Mail.To[0] != "env@example.com" || p.Mail.To[0] != "env@example.com" {
		t.Fatalf("recipients: orders %v, returns %v, top %v", o.Mail.To, r.Mail.To, p.Mail.To)
	}
	if o.Mail.From != "ses@example.com" || r.Mail.From != "ses@example.com" || o.Mail.LinkTTL.Hours() != 1 {
		t.Fatalf("sender %q %q, ttl %v", o.Mail.From, r.Mail.From, o.Mail.LinkTTL)
	}
}
