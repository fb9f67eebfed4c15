// Command sluice runs the Sluice batch pipeline: on one machine by default
// (sluice run, sluice serve), or against AWS. See `sluice help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/sluicehq/sluice/pkg/tracing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first SIGINT or SIGTERM stops the work in order (the batch can be
	// resumed); a second one ends the process at once, as the default does.
	go func() { <-ctx.Done(); stop() }()
	stopProfile := profile(os.Getenv("SLUICE_CPUPROFILE"), os.Getenv("SLUICE_MEMPROFILE"))
	// OTEL_EXPORTER_OTLP_ENDPOINT turns tracing on for sluice run/serve as
	// for the services; unset, nothing is set up and spans cost nothing.
	stopTracing, err := tracing.Setup(ctx, "sluice", os.Getenv)
	if err == nil {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
		stopTracing(context.WithoutCancel(ctx))
	}
	stopProfile()
	stop()
	if err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			if ex.msg != "" {
				fmt.Fprintln(os.Stderr, "sluice:", ex.msg)
			}
			os.Exit(ex.code)
		}
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

// profile writes pprof CPU and heap profiles when the variables name files:
// how the figures in BENCHMARKS.md were explained.
func profile(cpu, mem string) func() {
	var f *os.File
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		if mem != "" {
			if m, err := os.Create(mem); err == nil {
				pprof.Lookup("allocs").WriteTo(m, 0)
				m.Close()
			}
		}
	}
}
