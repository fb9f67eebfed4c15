package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sluicehq/sluice/pkg/awsconfig"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sqlite"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
)

var stageQueues = pipeline.Queues()

// deadRow is one dead-lettered message as the CLI shows it.
type deadRow struct {
	id, reason, body string
	sent             time.Time
}

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
	queue := pos[0]

	var rows []deadRow
	moved := 0
	if *onAWS {
		cfg, err := awsconfig.Load(ctx)
		if err != nil {
			return err
		}
		client := sqs.NewFromConfig(cfg)
		url := func(name string) (string, error) {
			out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
			if err != nil {
				return "", fmt.Errorf("queue %s: %w", name, err)
			}
			return *out.QueueUrl, nil
		}
		src, err := url(*af.queuePrefix + queue)
		if err != nil {
			return err
		}
		dlqURL, err := url(*af.queuePrefix + queue + "-dlq")
		if err != nil {
			return err
		}
		dlq := sqsqueue.New(cfg, dlqURL)
		if verb == "list" {
			dead, err := dlq.Peek(ctx, *limit)
			if err != nil {
				return err
			}
			for _, d := range dead {
				reason := d.Reason
				if reason == "" {
					reason = fmt.Sprintf("moved by the queue's redrive policy after %d receives", d.ReceiveCount)
				}
				rows = append(rows, deadRow{d.ID, reason, string(d.Body), d.SentAt})
			}
		} else if moved, err = dlq.MoveAll(ctx, sqsqueue.New(cfg, src)); err != nil {
			return err
		}
	} else {
		db, err := openLocalDB(*data, verb == "list")
		if err != nil {
			return err
		}
		defer db.Close()
		dlq := db.Queue(queue, sqlite.QueueOptions{}).DeadLetterQueue()
		if verb == "list" {
			dead, err := dlq.Peek(ctx, *limit)
			if err != nil {
				return err
			}
			for _, d := range dead {
				rows = append(rows, deadRow{d.ID, d.Reason, string(d.Body), d.SentAt})
			}
		} else if moved, err = dlq.MoveAll(ctx, queue); err != nil {
			return err
		}
	}
	if verb == "redrive" {
		fmt.Fprintf(e.stdout, "moved %d message(s) from %s-dlq back to %s\n", moved, queue, queue)
		return nil
	}
	if len(rows) == 0 {
		fmt.Fprintf(e.stdout, "%s-dlq is empty\n", queue)
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSENT\tREASON\tBODY")
	for _, r := range rows {
		body := r.body
		if len(body) > 120 {
			body = body[:120] + "…"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.id, r.sent.Local().Format("2006-01-02 15:04:05"), oneLine(r.reason), oneLine(body))
	}
	return w.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
