package pipeline_test

import (
	"context"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// uncounted makes the ledger's ChunkCounted check (its cost included)
// answer "not counted", so a benchmark that processes one chunk again and
// again measures the whole path, not the redelivery short cut.
type uncounted struct{ sluice.Ledger }

func (u uncounted) ChunkCounted(ctx context.Context, id string, chunk int) (bool, error) {
	if cc, ok := u.Ledger.(sluice.ChunkChecker); ok {
		_, err := cc.ChunkCounted(ctx, id, chunk)
		return false, err
	}
	return false, nil
}
