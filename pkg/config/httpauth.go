package config

import (
	"fmt"
	"net/url"

	"go.yaml.in/yaml/v3"
)

// feedAuth applies the rule for a feed's reference.http.auth. A feed that
// writes `auth:` replaces the inherited auth whole (`auth: {}` is none),
// rather than merging a bearer token over a SigV4 setting. A feed that
// does not write it inherits the top level's only for the same host: a
// token or signature meant for one partner is never sent to another, so a
// feed whose url has another host must restate its auth, or the
// configuration is refused. A feed that writes `reference.dataset` while
// it enriches over HTTP is refused too, rather than the dataset being
// silently unused. before is called on the settings the feed is
// decoded over, after on the decoded settings.
func feedAuth(node *yaml.Node, top *HTTPReference) (before func(*Settings), after func(*Settings) error) {
	stated := hasKey(node, "reference", "http", "auth")
	before = func(s *Settings) {
		if stated && s.Reference.HTTP != nil {
			s.Reference.HTTP.Auth = HTTPAuth{}
		}
	}
	datasetStated := hasKey(node, "reference", "dataset")
	after = func(s *Settings) error {
		h := s.Reference.HTTP
		if datasetStated && s.FromHTTP() {
			// Silently unused, the dataset would look configured while the
			// feed enriches from the API.
			return fmt.Errorf("reference.dataset %q is set but the feed enriches from the HTTP API %s (reference.http, inherited unless set here): add `http: null` to use the dataset, or remove `dataset`", s.Reference.Dataset, h.URL)
		}
		if stated || top == nil || h == nil || (top.Auth.BearerEnv == "" && top.Auth.SigV4 == nil) {
			return nil
		}
		if a, b := urlHost(top.URL), urlHost(h.URL); a != b {
			return fmt.Errorf("reference.http.url is on host %q but the auth it would inherit is the top level's, for %q: auth is not carried to another host; state reference.http.auth in the feed (auth: {} for none)", b, a)
		}
		return nil
	}
	return before, after
}

func urlHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s // unparsable: compared whole, so a difference still refuses
	}
	return u.Host
}

// hasKey reports whether the mapping node holds the nested key path.
func hasKey(n *yaml.Node, path ...string) bool {
	for n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if len(path) == 0 {
		return true
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == path[0] {
			return hasKey(n.Content[i+1], path[1:]...)
		}
	}
	return false
}
