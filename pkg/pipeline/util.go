package pipeline

import (
	"errors"

	"github.com/sluicehq/sluice/pkg/sluice"
)

func isNotFound(err error) bool { return errors.Is(err, sluice.ErrNotFound) }
