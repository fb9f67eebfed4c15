package reference

import (
	"context"
	"errors"
	"time"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Grace is how long a superseded version is kept even when no batch uses
// it: a splitter that read the current version just before a load may
// still be creating its batch, and must find the version whole.
const Grace = 10 * time.Minute

// Usage is one version as `reference list` shows it.
type Usage struct {
	sluice.RefVersion
	Current bool     `json:"current"`
	Batches []string `json:"batches,omitempty"` // the unfinished batches that use it
	Done    int      `json:"finishedBatches"`   // finished batches that used it
}

// List returns every version, oldest first, with the batches using each.
func List(ctx context.Context, cat sluice.Catalog, ledger sluice.Ledger) ([]Usage, error) {
	vs, err := cat.Versions(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := cat.Current(ctx)
	if err != nil && !errors.Is(err, sluice.ErrNotFound) {
		return nil, err
	}
	bs, err := ledger.ListBatches(ctx, sluice.BatchFilter{FieldsOnly: true}) // states and versions only
	if err != nil {
		return nil, err
	}
	out := make([]Usage, len(vs))
	at := map[string]int{}
	for i, v := range vs {
		out[i] = Usage{RefVersion: v, Current: v.ID == cur.ID}
		at[v.ID] = i
	}
	for _, b := range bs {
		i, ok := at[b.RefVersion]
		switch {
		case !ok:
		case b.State.Terminal():
			out[i].Done++
		default:
			out[i].Batches = append(out[i].Batches, b.ID)
		}
	}
	return out, nil
}

// Collect deletes the versions that are not current, that no unfinished
// batch uses, and that were superseded more than grace ago. It returns the
// IDs it deleted. A version an unfinished batch pins is never deleted,
// however old.
func Collect(ctx context.Context, cat sluice.Catalog, ledger sluice.Ledger, grace time.Duration, now time.Time) ([]string, error) {
	us, err := List(ctx, cat, ledger)
	if err != nil {
		return nil, err
	}
	var gone []string
	for i, u := range us {
		if u.Current || len(u.Batches) > 0 || i == len(us)-1 {
			continue // the newest may be a load that is not yet published
		}
		if superseded := us[i+1].LoadedAt; now.Sub(superseded) < grace {
			continue
		}
		if err := cat.Delete(ctx, u.ID); err != nil {
			return gone, err
		}
		gone = append(gone, u.ID)
	}
	return gone, nil
}
