// Package fault is Sluice's one mechanism for making things go wrong on
// purpose, for the crash, chaos and end-to-end tests. It has two kinds of
// fault, both off unless their environment variable is set:
//
//   - SLUICE_CRASH_AT=POINT[@N] (CrashAt): the process ends at once, as
//     kill -9 would, the Nth time (default first) a stage reaches that step
//     boundary (see pipeline.Points). Nothing is flushed or closed.
//   - SLUICE_TEST_DUPLICATE_SENDS=true (DuplicateSends): every message a
//     stage sends is sent twice, to prove the stages tolerate SQS's
//     at-least-once delivery.
//
// Beside them, one recorder: SLUICE_TEST_OBSERVE_CALLS=FILE (Observe)
// appends each distinct AWS call a service makes to FILE, for the test
// that holds them against the Terraform's IAM policies.
//
// Production code only passes what these return into pipeline.Deps (and,
// for PointLedgerAfterShard, into the DynamoDB ledger's WithFault); no
// other test hook lives in a production package.
package fault

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/sluice"
)

// The environment variables that switch the faults on.
const (
	EnvCrashAt        = "SLUICE_CRASH_AT"
	EnvDuplicateSends = "SLUICE_TEST_DUPLICATE_SENDS"
	EnvObserveCalls   = "SLUICE_TEST_OBSERVE_CALLS"
)

// CrashExitCode is the status a process crashed by CrashAt exits with.
const CrashExitCode = 86

// CrashAt returns a pipeline.Deps.Fault that ends the process at the
// spec's point (POINT or POINT@N), or nil for an empty spec.
func CrashAt(spec string) func(point string) error {
	if spec == "" {
		return nil
	}
	point, nth := spec, 1
	if i := strings.LastIndexByte(spec, '@'); i > 0 {
		point = spec[:i]
		nth, _ = strconv.Atoi(spec[i+1:])
	}
	var mu sync.Mutex
	hits := 0
	return func(p string) error {
		if p != point {
			return nil
		}
		mu.Lock()
		hits++
		h := hits
		mu.Unlock()
		if h == nth {
			os.Exit(CrashExitCode)
		}
		return nil
	}
}

// DuplicateSends makes every queue d's stages send to send each message
// twice.
func DuplicateSends(d *pipeline.Deps) {
	for _, q := range []*sluice.Queue{&d.Chunks, &d.Merges, &d.Notifies, &d.Scans, &d.Deliveries} {
		if *q != nil {
			*q = twice{*q}
		}
	}
}

// twice sends every message two times.
type twice struct{ sluice.Queue }

func (t twice) Send(ctx context.Context, body []byte) error {
	if err := t.Queue.Send(ctx, body); err != nil {
		return err
	}
	return t.Queue.Send(ctx, body)
}

func (t twice) SendBatch(ctx context.Context, bodies [][]byte) error {
	if err := t.Queue.SendBatch(ctx, bodies); err != nil {
		return err
	}
	return t.Queue.SendBatch(ctx, bodies)
}

// PointLedgerAfterShard is the fault point inside the DynamoDB ledger's
// sharded batch counter: a shard's completing write is done, the batch
// item is not told yet (pkg/dynamoledger shards.go). The worker reaches it
// in ChunkDone, the splitter in SetTotal; the redelivered message must
// finish the step. Services pass their CrashAt to the ledger's WithFault.
const PointLedgerAfterShard = "ledger.after_shard"
