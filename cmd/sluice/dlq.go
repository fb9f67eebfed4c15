package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
	"github.com/sluicehq/sluice/pkg/sqlite"
)

var stageQueues = pipeline.Queues()

func cmdDLQ(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "redrive") {
		return usageErr("usage: sluice dlq list|redrive QUEUE [--data DIR | --aws ...]   (QUEUE: %s)", strings.Join(stageQueues, ", "))
	}
	verb := args[0]
	fs := newFlags(e, "dlq "+verb, "QUEUE [flags]", map[string]string{
		"list":    "Shows the messages in QUEUE's dead-letter queue, with the reason each was put there.",
		"redrive": "Moves every message of QUEUE's dead-letter queue back to QUEUE, to be tried again\n(after the cause is fixed).",
	}[verb])
	data := fs.String("data", defaultData(e), "data `directory` of the local pipeline; env SLUICE_DATA")
	onAWS := fs.Bool("aws", false, "the SQS queues (names from --queue-prefix) instead of the local ones")
	limit := fs.Int("limit", 50, "messages to list")
	af := addAWSFlags(fs, e)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 || !slices.Contains(stageQueues, pos[0]) {
		fs.Usage()
		return usageErr("name one queue: %s", strings.Join(stageQueues, ", "))
	}
	if *limit < 1 {
		return usageErr("--limit must be at least 1")
	}
	name := pos[0]
	q, closeQ, err := openStageQueue(ctx, *onAWS, *data, af, name, verb == "list")
	if err != nil {
		return err
	}
	defer closeQ()
	// From here on only the Queue port: the same path for every backend.
	if verb == "redrive" {
		moved, err := q.Redrive(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "moved %d message(s) from %s-dlq back to %s\n", moved, name, name)
		return nil
	}
	dead, err := q.PeekDead(ctx, *limit)
	if err != nil {
		return err
	}
	if len(dead) == 0 {
		fmt.Fprintf(e.stdout, "%s-dlq is empty\n", name)
		return nil
	}
	return printDead(e.stdout, dead)
}

// openStageQueue opens a stage's queue, with its dead-letter queue, on the
// local database or on SQS (wire.AWS, resolving these two queues only).
// Building the adapter is the only place the backends differ. Locally it
// opens the database alone, not wire.Local's whole directory and not the
// engine's lock, so that it works beside a running pipeline; read-only for
// a listing.
func openStageQueue(ctx context.Context, onAWS bool, data string, af awsFlags, name string, readOnly bool) (sluice.Queue, func(), error) {
	if onAWS {
		o := af.options()
		o.Reads = []string{name} // this queue and its dead-letter queue only
		ports, err := af.ports(ctx, o)
		if err != nil {
			return nil, nil, err
		}
		return ports.Queues[name], func() { ports.Close() }, nil
	}
	db, err := openLocalDB(data, readOnly)
	if err != nil {
		return nil, nil, err
	}
	return db.Queue(name, sqlite.QueueOptions{}), func() { db.Close() }, nil
}

func printDead(out io.Writer, dead []sluice.DeadMessage) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSENT\tREASON\tBODY")
	for _, d := range dead {
		body := string(d.Body)
		if len(body) > 120 {
			body = body[:120] + "…"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.ID, d.SentAt.Local().Format("2006-01-02 15:04:05"), shown(d.Reason), shown(body))
	}
	return w.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// shown is s on one line with bidi and invisible characters made visible
// (<U+202E>): a dead message's body and reason come from outside.
func shown(s string) string { return sluice.DisplayName(oneLine(s)) }
