package embedded

import (
	"context"
	"os"

	awscfg "github.com/aws/aws-sdk-go-v2/config"

	"github.com/sluicehq/sluice/pkg/httpref"
)

// useHTTPReference builds the HTTP API catalogs of the feeds whose
// reference is reference.http. AWS credentials are only loaded when one
// of those APIs wants SigV4, so a local engine needs none otherwise.
func (e *Engine) useHTTPReference() error {
	opts := httpref.Options{Getenv: os.Getenv}
	for _, f := range e.Config.FeedList() {
		if !f.FromHTTP() || f.Reference.HTTP.Auth.SigV4 == nil || opts.Credentials != nil {
			continue
		}
		c, err := awscfg.LoadDefaultConfig(context.Background(), awscfg.WithRegion(f.Reference.HTTP.Auth.SigV4.Region))
		if err != nil {
			return err
		}
		opts.Credentials = c.Credentials
	}
	return e.Ports.UseHTTPReference(e.Config, opts)
}
