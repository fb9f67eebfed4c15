package s3event

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sluicehq/sluice/pkg/sluice"
)

// Each handles one object-created event; redelivered says whether the
// message carrying it may have been handled before, by a process that died.
type Each func(ctx context.Context, ev sluice.ObjectCreated, redelivered bool) error

// Handle parses m and calls each for every object it announces, so that the
// split stage only ever sees the domain event, whatever envelope S3 or
// EventBridge put it in. A message announcing nothing (S3's test event, a
// deletion) is logged and acknowledged.
//
// S3 may batch several records in one message. If any of them fails for a
// reason that may pass, the whole message fails as transient, to be
// retried: the records that succeeded are no-ops the second time. Only when
// every failure is permanent is the error permanent, so that the message
// goes to the dead-letter queue instead of burning retries.
func Handle(ctx context.Context, m sluice.Message, log *slog.Logger, each Each) error {
	evs, err := Parse(m.Body)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		log.Info("message announces no new object; ignored", "message_id", m.ID)
	}
	var temporary, permanent []error
	for _, ev := range evs {
		if err := each(ctx, ev, m.ReceiveCount > 1); sluice.IsPermanent(err) {
			permanent = append(permanent, err)
		} else if err != nil {
			temporary = append(temporary, err)
		}
	}
	if len(temporary) == 0 {
		return errors.Join(permanent...)
	}
	// Wrap only the errors that may pass: wrapping a permanent one as well
	// would make the whole message permanent (IsPermanent looks through
	// wrapping), and the records that could succeed would never be retried.
	err = fmt.Errorf("splitting %d of %d records failed: %w", len(temporary)+len(permanent), len(evs), errors.Join(temporary...))
	if len(permanent) > 0 {
		err = fmt.Errorf("%w; and for good: %v", err, errors.Join(permanent...))
	}
	return err
}
