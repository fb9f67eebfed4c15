package wire

import (
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/httpref"
)

// UseHTTPReference makes the catalog the HTTP API's when the configuration
// sets reference.http, for either builder: the stages then look keys up in
// the API, and a reference load is refused with a message that says why.
// One catalog per process, so its cache, rate limit and circuit breaker are
// shared by all the chunks the process works on.
func (p *Ports) UseHTTPReference(cfg *config.Pipeline, opts httpref.Options) error {
	if cfg.Reference.HTTP == nil {
		return nil
	}
	c, err := httpref.New(cfg.Reference, opts)
	if err != nil {
		return err
	}
	p.Catalog = c
	return nil
}
