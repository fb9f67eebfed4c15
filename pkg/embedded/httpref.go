package embedded

import (
	"context"
	"os"

	awscfg "github.com/aws/aws-sdk-go-v2/config"

	"github.com/sluicehq/sluice/pkg/httpref"
)

// useHTTPReference swaps in the HTTP API's catalog when the configuration
// says reference.http. AWS credentials are only loaded when the API wants
// SigV4, so a local engine needs none otherwise.
func (e *Engine) useHTTPReference() error {
	h := e.Config.Reference.HTTP
	if h == nil {
		return nil
	}
	opts := httpref.Options{Getenv: os.Getenv}
	if h.Auth.SigV4 != nil {
		c, err := awscfg.LoadDefaultConfig(context.Background(), awscfg.WithRegion(h.Auth.SigV4.Region))
		if err != nil {
			return err
		}
		opts.Credentials = c.Credentials
	}
	return e.Ports.UseHTTPReference(e.Config, opts)
}
