package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/console"
)

// exposure is who may reach a console: the address it listens on, the
// token, and the flags that widen it. sluice console and sluice serve share
// it, since serve serves the console too.
type exposure struct {
	addr       *string
	allowHosts hostList
	insecure   *bool
	token      string
	// traceURL (SLUICE_TRACE_URL) links a batch page's trace ID to a
	// trace UI; a deployment setting, as the token is.
	traceURL string
}

// hostList is a repeatable, comma-separated flag.
type hostList []string

func (l *hostList) String() string { return strings.Join(*l, ",") }

func (l *hostList) Set(v string) error {
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			*l = append(*l, h)
		}
	}
	return nil
}

func addExposureFlags(fs *flag.FlagSet, e env) *exposure {
	x := &exposure{token: e.getenv("SLUICE_CONSOLE_TOKEN"), traceURL: e.getenv("SLUICE_TRACE_URL")}
	x.addr = fs.String("addr", "127.0.0.1:8080", "`address` to listen on (loopback by default)")
	fs.Var(&x.allowHosts, "allow-host", "a host `name` the console answers to besides localhost (repeat or comma-separate); any other Host header gets 421")
	x.insecure = fs.Bool("insecure-no-token", false, "listen beyond loopback without SLUICE_CONSOLE_TOKEN: anyone who reaches the port can upload and download")
	return x
}

// check refuses an address reachable from other machines unless a token is
// set or --insecure-no-token says so. It runs before anything is opened.
func (x *exposure) check() error {
	if err := console.CheckTraceURL(x.traceURL); err != nil {
		return usageErr("SLUICE_TRACE_URL: %v", err)
	}
	if x.token != "" || *x.insecure {
		return nil
	}
	if loopbackOnly(*x.addr) {
		return nil
	}
	return usageErr("refusing to listen on %s without a token: anyone on the network could upload files and download outputs.\n"+
		"Set SLUICE_CONSOLE_TOKEN, listen on 127.0.0.1, or pass --insecure-no-token if that is really what you want", *x.addr)
}

// loopbackOnly reports whether every address addr's host names is a
// loopback one. An empty host (":8080"), 0.0.0.0 and [::] mean every
// interface; a name that does not resolve counts as not loopback.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// hosts are the Host header values the console answers to besides
// loopback ones: the names given with --allow-host, and the address it
// listens on: the name or IP in --addr or, for every interface, this
// machine's addresses. A DNS-rebinding attack always arrives with the
// attacker's DNS name, so an address a person types is safe to allow.
func (x *exposure) hosts() []string {
	hosts := append([]string(nil), x.allowHosts...)
	host, _, err := net.SplitHostPort(*x.addr)
	if err != nil {
		host = *x.addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return append(hosts, host)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				hosts = append(hosts, n.IP.String())
			}
		}
	}
	return hosts
}

// listen opens the port and warns, when --insecure-no-token let it through,
// that the console is open to the network.
func (x *exposure) listen(e env) (net.Listener, error) {
	ln, err := net.Listen("tcp", *x.addr)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); x.token == "" && !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(e.stderr, "warning: the console listens on %s without a token (--insecure-no-token); anyone who reaches it can upload and download.\n", ln.Addr())
	}
	return ln, nil
}

// serverSetup is the preamble the commands that serve the console share
// (console, serve): they take no arguments, refuse an exposed address
// before anything is opened, then load the configuration and the logger.
func serverSetup(e env, fs *flag.FlagSet, args []string, x *exposure, cfgPath *string) (*config.Pipeline, *slog.Logger, error) {
	if _, err := parseArgs(fs, args, 0, fs.Name()+" takes no arguments"); err != nil {
		return nil, nil, err
	}
	if err := x.check(); err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(*cfgPath) // a pointer: the flag is set only by the parse above
	if err != nil {
		return nil, nil, err
	}
	return cfg, logger(e), nil
}
