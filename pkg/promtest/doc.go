// Package promtest proves deploy/'s observability files against what Sluice
// really exports: every Grafana panel query and every Prometheus recording
// and alerting rule names only metrics the code registers (pkg/metrics), the
// alerts behave as intended on synthetic series (promtool test rules), and,
// against a real Prometheus scraping `sluice serve` while it processes
// files, every query evaluates, every panel has data and every rule loads
// healthy. The package holds tests only.
package promtest
