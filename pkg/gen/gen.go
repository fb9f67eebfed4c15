// Package gen writes deterministic demo, test and benchmark data in the
// format of the seed sample: an orders CSV and the financial reference table
// that enriches it. The same Options always give the same bytes, so a test
// can generate its input instead of storing it, and a benchmark can make
// files of any size (10M rows take seconds, not minutes).
//
// Output differs from the seed in two deliberate ways: lines end in LF (with
// a final line break), and some valid rows quote a field (a country holding
// a comma or an embedded "") so that every file exercises the parser. A share
// of rows (Options.BadRate) is faulty; each faulty row breaks exactly one of
// the default rules, and Stats counts them by kind.
package gen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Headers of the two files, as in the seed.
const (
	OrdersHeader     = "uuid,Country,Item Type,Sales Channel,Order Priority,Order Date,Region,Ship Date"
	FinancialsHeader = "uuid,unitsSold,unitPrice,unitCost,totalRevenue,totalCost,totalProfit"
)

// Kinds of faulty rows. Each breaks exactly one default rule.
const (
	KindUUIDPattern = "uuid_pattern" // uuid of 8 digits or with letters (rule pattern)
	KindTooLong     = "too_long"     // one field over its maximum length (rule maxLength)
	KindEmpty       = "empty"        // one field empty (rule required)
	KindShortRow    = "short_row"    // 7 fields (rule field_count)
	KindLongRow     = "long_row"     // 9 fields (rule field_count)
	KindUnknownKey  = "unknown_key"  // 9-digit uuid absent from the reference (rule reference)
)

// Kinds lists every kind of faulty row, in a fixed order.
var Kinds = []string{KindUUIDPattern, KindTooLong, KindEmpty, KindShortRow, KindLongRow, KindUnknownKey}

// ExpectedRule is the rule of the default rule set that rejects a faulty row
// of the given kind ("" for an unknown kind).
func ExpectedRule(kind string) string {
	switch kind {
	case KindUUIDPattern:
		return "pattern"
	case KindTooLong:
		return "maxLength"
	case KindEmpty:
		return "required"
	case KindShortRow, KindLongRow:
		return "field_count"
	case KindUnknownKey:
		return "reference"
	}
	return ""
}

// Options says what to generate.
type Options struct {
	Rows    int     // order rows, header excluded
	RefRows int     // reference rows; 0 = one per order, as in the seed
	Seed    int64   // same seed, same bytes
	BadRate float64 // share of faulty order rows, in [0, 1], e.g. 0.03
}

// Stats describes what was written.
type Stats struct {
	Rows      int            // order rows written, faulty ones included
	RefRows   int            // reference rows written
	Bad       int            // faulty order rows
	BadByKind map[string]int // faulty rows per kind; every kind is present
}

// Keys are 9-digit numbers: 100000000 + a permutation of [0, keySpace).
const (
	keySpace = 900_000_000
	keyBase  = 100_000_000
)

// MaxRefRows bounds Options.RefRows (and Rows when RefRows is 0) so that
// keys outside the reference remain for unknown_key rows.
const MaxRefRows = keySpace / 2

const bufSize = 1 << 20

// Order dates span the seed's range; ship dates follow within 0..50 days.
var (
	firstDay  = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	orderDays = int(time.Date(2017, 7, 28, 0, 0, 0, 0, time.UTC).Sub(firstDay).Hours()/24) + 1
)

const maxShipDelay = 50

// tables holds the pools pre-encoded as CSV fields, so that writing a row is
// a few appends. It is built once and only read afterwards.
type tables struct {
	countries, regions [][]byte
	items, channels    [][]byte
	priorities         [][]byte
	dates              [][]byte // m/d/yy by day since firstDay
	tooLong            [8][][]byte
	extra              [][]byte
}

var sharedTables = sync.OnceValue(newTables)

func newTables() *tables {
	t := &tables{}
	for _, c := range countries {
		t.countries = append(t.countries, encode(c.name))
		t.regions = append(t.regions, encode(c.region))
	}
	for _, it := range items {
		t.items = append(t.items, encode(it.name))
	}
	for _, s := range channels {
		t.channels = append(t.channels, encode(s))
	}
	for _, s := range priorities {
		t.priorities = append(t.priorities, encode(s))
	}
	for d := range orderDays + maxShipDelay {
		day := firstDay.AddDate(0, 0, d)
		t.dates = append(t.dates, fmt.Appendf(nil, "%d/%d/%02d", int(day.Month()), day.Day(), day.Year()%100))
	}
	for col, vals := range tooLong {
		for _, s := range vals {
			t.tooLong[col] = append(t.tooLong[col], encode(s))
		}
	}
	for _, s := range extraFields {
		t.extra = append(t.extra, encode(s))
	}
	return t
}

// encode returns s as a CSV field, quoted only when it must be.
func encode(s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return []byte(s)
	}
	return []byte(`"` + strings.ReplaceAll(s, `"`, `""`) + `"`)
}

// keyPerm is a pseudo-random permutation of [0, keySpace): a 4-round Feistel
// network on 30 bits with cycle walking. It gives unique, unordered-looking
// keys without remembering the ones already used.
type keyPerm struct{ k [4]uint64 }

func (p *keyPerm) at(i uint64) uint64 {
	x := i
	for {
		l, r := x>>15, x&0x7fff
		for _, k := range p.k {
			l, r = r, l^(mix(r^k)&0x7fff)
		}
		x = l<<15 | r
		if x < keySpace {
			return x
		}
	}
}

// mix is SplitMix64's finaliser.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// below maps 32 random bits to [0, n) (Lemire's multiply-shift; the bias is
// negligible for these pool sizes and does not matter for test data).
func below(bits uint64, n int) int {
	return int(((bits & 0xffffffff) * uint64(n)) >> 32)
}

// keyAttrs derives a reference key's item type and units sold from the key
// index alone, so that an order shows the item type priced in its reference
// row, whichever order the two files are written in.
func keyAttrs(salt, k uint64) (item, units int) {
	h := mix(salt ^ k)
	return below(h, len(items)), 1 + below(h>>32, 9999)
}

// Write writes the orders CSV to orders and the reference table to
// financials. Both are buffered internally; neither is closed.
func Write(orders, financials io.Writer, o Options) (Stats, error) {
	if o.Rows < 0 || o.RefRows < 0 {
		return Stats{}, errors.New("gen: negative row count")
	}
	if !(o.BadRate >= 0 && o.BadRate <= 1) {
		return Stats{}, fmt.Errorf("gen: BadRate %v outside [0, 1]", o.BadRate)
	}
	m := o.RefRows
	if m == 0 {
		m = o.Rows
	}
	if m > MaxRefRows {
		return Stats{}, fmt.Errorf("gen: %d reference rows, more than %d", m, MaxRefRows)
	}

	seed := uint64(o.Seed)
	rng := rand.NewPCG(seed, 0x5eed_0bde_75)
	salt := rng.Uint64()
	var perm keyPerm
	for i := range perm.k {
		perm.k[i] = rng.Uint64()
	}
	t := sharedTables()

	if err := writeFinancials(financials, m, salt, &perm); err != nil {
		return Stats{}, err
	}
	st, err := writeOrders(orders, o, m, rng, salt, &perm, t)
	st.RefRows = m
	return st, err
}

func writeFinancials(dst io.Writer, m int, salt uint64, perm *keyPerm) error {
	w := bufio.NewWriterSize(dst, bufSize)
	if _, err := w.WriteString(FinancialsHeader + "\n"); err != nil {
		return err
	}
	for k := range m {
		it, units := keyAttrs(salt, uint64(k))
		price, cost := items[it].price, items[it].cost
		u := int64(units)
		if w.Available() < 256 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		b := w.AvailableBuffer()
		b = strconv.AppendUint(b, keyBase+perm.at(uint64(k)), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, u, 10)
		b = append(b, ',')
		b = appendCents(b, price)
		b = append(b, ',')
		b = appendCents(b, cost)
		b = append(b, ',')
		b = appendCents(b, u*price)
		b = append(b, ',')
		b = appendCents(b, u*cost)
		b = append(b, ',')
		b = appendCents(b, u*(price-cost))
		b = append(b, '\n')
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Flush()
}

// appendCents formats an amount in cents as the seed does: no trailing
// zeros in the fraction, no point for whole amounts (1211, 437.2, 91008.96).
func appendCents(b []byte, c int64) []byte {
	if c < 0 {
		b = append(b, '-')
		c = -c
	}
	b = strconv.AppendInt(b, c/100, 10)
	switch f := c % 100; {
	case f == 0:
	case f%10 == 0:
		b = append(b, '.', byte('0'+f/10))
	default:
		b = append(b, '.', byte('0'+f/10), byte('0'+f%10))
	}
	return b
}

func writeOrders(dst io.Writer, o Options, m int, rng *rand.PCG, salt uint64, perm *keyPerm, t *tables) (st Stats, err error) {
	var byKind [6]int
	st.Rows = o.Rows
	defer func() {
		st.BadByKind = make(map[string]int, len(Kinds))
		for i, k := range Kinds {
			st.BadByKind[k] = byKind[i]
		}
	}()
	w := bufio.NewWriterSize(dst, bufSize)
	if _, err := w.WriteString(OrdersHeader + "\n"); err != nil {
		return st, err
	}
	// Compare 53 random bits against the rate; rate 1 must always hit.
	badCut := uint64(o.BadRate * (1 << 53))

	var (
		uuidBuf [16]byte
		fields  [9][]byte
	)
	for i := range o.Rows {
		k := uint64(i)
		if o.RefRows > 0 {
			k = uint64(below(rng.Uint64(), m))
		}
		it, _ := keyAttrs(salt, k)
		r := rng.Uint64()
		c := below(r, len(countries))
		day := below(r>>32, orderDays)
		r = rng.Uint64()
		ship := day + below(r, maxShipDelay+1)

		fields[0] = strconv.AppendUint(uuidBuf[:0], keyBase+perm.at(k), 10)
		fields[1] = t.countries[c]
		fields[2] = t.items[it]
		fields[3] = t.channels[(r>>32)&1]
		fields[4] = t.priorities[(r>>33)&3]
		fields[5] = t.dates[day]
		fields[6] = t.regions[c]
		fields[7] = t.dates[ship]
		n := 8

		if f := rng.Uint64(); f>>11 < badCut {
			kind := below(f, len(Kinds))
			byKind[kind]++
			st.Bad++
			n = spoil(&fields, Kinds[kind], rng.Uint64(), m, perm, t, uuidBuf[:0])
		}

		if w.Available() < 1024 {
			if err := w.Flush(); err != nil {
				return st, err
			}
		}
		b := w.AvailableBuffer()
		for j, f := range fields[:n] {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, f...)
		}
		b = append(b, '\n')
		if _, err := w.Write(b); err != nil {
			return st, err
		}
	}
	return st, w.Flush()
}

// spoil breaks exactly one rule in a valid row and returns its new field
// count. scratch may hold a rewritten uuid.
func spoil(fields *[9][]byte, kind string, r uint64, m int, perm *keyPerm, t *tables, scratch []byte) int {
	col := 1 + below(r, 7) // a column other than uuid
	variant := int(r>>32) & 0xff
	switch kind {
	case KindUUIDPattern:
		u := fields[0] // 9 digits, in scratch
		switch variant % 3 {
		case 0: // one digit short
			fields[0] = u[:8]
		case 1: // a letter among the digits
			u[variant%9] = 'A' + byte(variant%26)
		default: // a prefix, still 9 characters
			u[0], u[1] = 'I', 'D'
		}
	case KindTooLong:
		vals := t.tooLong[col]
		fields[col] = vals[variant%len(vals)]
	case KindEmpty:
		fields[below(r, 8)] = nil
	case KindShortRow:
		drop := below(r, 8)
		copy(fields[drop:8], fields[drop+1:8])
		return 7
	case KindLongRow:
		fields[8] = t.extra[variant%len(t.extra)]
		return 9
	case KindUnknownKey:
		k := uint64(m) + uint64(below(r, keySpace-m))
		fields[0] = strconv.AppendUint(scratch[:0], keyBase+perm.at(k), 10)
	}
	return 8
}

// WriteFiles writes orders.csv and financials.csv into dir (created if
// needed) and returns their paths.
func WriteFiles(dir string, o Options) (ordersPath, financialsPath string, st Stats, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", Stats{}, err
	}
	ordersPath = filepath.Join(dir, "orders.csv")
	financialsPath = filepath.Join(dir, "financials.csv")
	of, err := os.Create(ordersPath)
	if err != nil {
		return "", "", Stats{}, err
	}
	defer of.Close()
	ff, err := os.Create(financialsPath)
	if err != nil {
		return "", "", Stats{}, err
	}
	defer ff.Close()
	if st, err = Write(of, ff, o); err != nil {
		return "", "", st, fmt.Errorf("gen: writing %s: %w", dir, err)
	}
	if err := of.Close(); err != nil {
		return "", "", st, err
	}
	if err := ff.Close(); err != nil {
		return "", "", st, err
	}
	return ordersPath, financialsPath, st, nil
}
