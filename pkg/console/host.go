package console

import (
	"net"
	"net/http"
	"strings"
)

// HostGuard answers 421 to any request whose Host header is not one this
// server is known by. It defends against DNS rebinding: a web page on
// attacker.example can make its own name resolve to 127.0.0.1 and then
// read and upload through a console on loopback, but the browser still
// sends "Host: attacker.example", which no check of the peer address sees.
//
// Allowed are loopback names (localhost, *.localhost) and addresses, and
// the names or addresses in allow (ports are ignored). A rebinding attack
// always arrives with a DNS name, so listing the addresses a server
// listens on is safe; names must be listed on purpose (--allow-host).
type HostGuard struct {
	allow map[string]bool
}

// NewHostGuard allows loopback plus each of hosts ("name", "name:port",
// an IP address or "[v6]:port").
func NewHostGuard(hosts ...string) *HostGuard {
	g := &HostGuard{allow: map[string]bool{}}
	for _, h := range hosts {
		if h = normHost(h); h != "" {
			g.allow[h] = true
		}
	}
	return g
}

// Allowed reports whether a request with this Host header may be served.
func (g *HostGuard) Allowed(host string) bool {
	h := normHost(host)
	switch {
	case h == "":
		return false
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return true
	case g != nil && g.allow[h]:
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Wrap refuses requests with a Host this guard does not allow.
func (g *HostGuard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.Allowed(r.Host) {
			writeError(w, http.StatusMisdirectedRequest,
				"this server does not answer to the host name %q; open it as localhost, or start it with --allow-host NAME to allow that name", r.Host)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// normHost lowercases a Host header and strips its port, brackets and a
// trailing dot ("LOCALHOST.:8080" and "localhost" are one host).
func normHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(h, ".")
}
