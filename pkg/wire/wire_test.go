package wire_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/awstest"
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sqsqueue"
	"github.com/sluicehq/sluice/pkg/wire"
)

func TestMain(m *testing.M) { awstest.Main(m, awstest.SQS) }

// TestLocal: every stage queue of the topology exists with its
// dead-letter queue, and a message received MaxReceive times without
// being deleted moves there.
func TestLocal(t *testing.T) {
	p, err := wire.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := t.Context()
	for _, q := range pipeline.Queues() {
		if p.Queues[q] == nil || p.DLQs[q] == nil {
			t.Fatalf("queue %s: %v, dead-letter queue %v", q, p.Queues[q], p.DLQs[q])
		}
	}
	q, dlq := p.StageQueues(pipeline.Topology[1])
	if err := q.Send(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for range pipeline.MaxReceive + 1 {
		if _, err := q.Receive(ctx, 1, time.Millisecond, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d, err := dlq.Depth(ctx); err != nil || d.Visible != 1 {
		t.Fatalf("after %d receives the dead-letter queue holds %+v (%v); want the message", pipeline.MaxReceive+1, d, err)
	}
	d := p.Deps(config.Default(), nil, nil)
	if d.Chunks != p.Queues[pipeline.QueueChunks] || d.Merges != p.Queues[pipeline.QueueMerge] || d.Notifies != p.Queues[pipeline.QueueNotify] || d.Deliveries != p.Queues[pipeline.QueueDeliveries] {
		t.Error("Deps do not send to the topology's queues")
	}
}

// TestAWSStage: a stage's ports hold only the queues it touches, its
// input with a dead-letter queue; a missing queue says to provision.
func TestAWSStage(t *testing.T) {
	env := awstest.Shared(t)
	cfg := env.Config(awstest.SQS)
	ctx := t.Context()
	prefix := "wire" + strings.ToLower(t.Name()) + "-"
	o := wire.AWSOptions{Bucket: "b", QueuePrefix: prefix}
	st, _ := pipeline.StageOf("merger")
	if _, err := wire.AWS(ctx, cfg, o.Stage(st)); err == nil || !strings.Contains(err.Error(), "sluice provision") {
		t.Fatalf("no queues yet: got %v, want an error that says to provision", err)
	}
	for _, q := range pipeline.Queues() {
		if _, _, err := sqsqueue.Ensure(ctx, cfg, prefix+q, sqsqueue.EnsureOptions{MaxReceive: pipeline.MaxReceive}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := wire.AWS(ctx, cfg, o.Stage(st))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Queues) != 3 || p.Queues[pipeline.QueueMerge] == nil || p.Queues[pipeline.QueueNotify] == nil || p.Queues[pipeline.QueueDeliveries] == nil {
		t.Errorf("merger queues: %v; want merge, notify and deliveries", p.Queues)
	}
	if len(p.DLQs) != 1 || p.DLQs[pipeline.QueueMerge] == nil {
		t.Errorf("merger dead-letter queues: %v; want merge's", p.DLQs)
	}
	if got := p.Queues[pipeline.QueueMerge].Name(); !strings.HasSuffix(got, prefix+pipeline.QueueMerge) {
		t.Errorf("the merge queue is %q", got)
	}
	all, err := wire.AWS(ctx, cfg, o.AllQueues())
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Queues) != len(pipeline.Topology) || len(all.DLQs) != len(pipeline.Topology) {
		t.Errorf("AllQueues: %d queues, %d dead-letter queues", len(all.Queues), len(all.DLQs))
	}
	// The splitter also sends to the queue it reads (a huge input's scan
	// ranges): that queue must keep its dead-letter queue.
	sp, _ := pipeline.StageOf("splitter")
	ps, err := wire.AWS(ctx, cfg, o.Stage(sp))
	if err != nil {
		t.Fatal(err)
	}
	in, dlq := ps.StageQueues(sp)
	if err := in.Send(ctx, []byte("poison")); err != nil {
		t.Fatal(err)
	}
	ms, err := in.Receive(ctx, 1, time.Minute, 5*time.Second)
	if err != nil || len(ms) != 1 {
		t.Fatalf("receive: %d, %v", len(ms), err)
	}
	if err := in.DeadLetter(ctx, ms[0], "poison"); err != nil {
		t.Fatalf("the splitter's ingest queue cannot dead-letter: %v", err)
	}
	if d, err := dlq.Depth(ctx); err != nil || d.Visible != 1 {
		t.Fatalf("ingest DLQ depth %+v, %v; want 1", d, err)
	}
}
