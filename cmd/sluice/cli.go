package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
)

// exitError carries an exit code: 1 for a failed batch, 2 for bad usage.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// env is what a command sees of the world, so tests can run it in-process.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name, args, help string
	run              func(ctx context.Context, e env, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"run", "[flags] INPUT.csv", "run one file through the whole pipeline on this machine and wait for it", jsonErrors(cmdRun, runError)},
		{"gen", "--rows N --out DIR [flags]", "generate orders.csv and financials.csv in the seed's format", cmdGen},
		{"reference", "load|list [flags]", "load a reference CSV as the new version of a dataset, or list the versions", cmdReference},
		{"status", "[flags] [BATCH]", "list batches, or show one", jsonErrors(cmdStatus, nil)},
		{"console", "[--data DIR] [--addr A]", "run the pipeline here and serve the batch console (web page + API)", cmdConsole},
		{"config", "default", "print the built-in pipeline configuration (YAML)", cmdConfig},
		{"feeds", "[--config F] [--json]", "list the feeds: prefixes under input/, reference datasets, outputs", cmdFeeds},
		{"serve", "[flags]", "run the pipeline continuously on DIR/input/, with autoscaled pools, console and metrics", cmdServe},
		{"gc", "[--dry-run] [--data DIR]", "remove what the retention settings let go of, and temp files of dead writes", cmdGC},
		{"dlq", "list|redrive QUEUE", "show a dead-letter queue's messages and reasons, or move them back to be retried", cmdDLQ},
		{"deliver", "retry BATCH [SINK]", "deliver a batch's failed sinks again (--force: delivered ones too)", cmdDeliver},
		{"provision", "[flags]", "create the bucket, queues and tables on AWS (or LocalStack, or emulators)", cmdProvision},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return exitError{code: 2}
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	return usageErr("unknown command %q; run `sluice help` for the list", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Sluice — batch file intake: split, validate + enrich, merge, notify.")
	fmt.Fprintln(w, "\nUsage: sluice COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %-28s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nRun `sluice COMMAND -h` for a command's flags.")
}

// newFlags makes a flag set that reports errors instead of exiting. Its
// Usage prints the command's help and flags on stderr; a bad flag only
// gets its error and a hint (see parse), so the error is not scrolled
// away by the flag list.
func newFlags(e env, name, args, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: sluice %s %s\n\n%s\n\nFlags:\n", name, args, help)
		fs.SetOutput(e.stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses flags placed before, between or after the arguments. -h
// prints the command's help; a bad flag returns its error with a one-line
// hint, which main prints last.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	usage := fs.Usage
	fs.Usage = func() {} // fs.Parse calls it on any error; we decide below
	defer func() { fs.Usage = usage }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return nil, exitError{code: 0}
			}
			return nil, usageErr("%v\nRun `sluice %s --help` for its flags.", err, fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseArgs parses the flags and wants exactly n arguments: on any other
// count it prints the command's help and returns usageErr(msg), so every
// command reports a wrong argument count the same way.
func parseArgs(fs *flag.FlagSet, args []string, n int, msg string) ([]string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		fs.Usage()
		return nil, usageErr("%s", msg)
	}
	return pos, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// logger writes text logs to stderr at the level SLUICE_LOG_LEVEL names
// (default warn, so a run's output is its result, not its chatter).
func logger(e env) *slog.Logger {
	lvl := slog.LevelWarn
	switch strings.ToLower(e.getenv("SLUICE_LOG_LEVEL")) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "error":
		lvl = slog.LevelError
	}
	if strings.ToLower(e.getenv("SLUICE_LOG_FORMAT")) == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: lvl}))
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: lvl}))
}

// loggerDefault is logger with another level when SLUICE_LOG_LEVEL is unset.
func loggerDefault(e env, level string) *slog.Logger {
	if e.getenv("SLUICE_LOG_LEVEL") != "" {
		return logger(e)
	}
	d := e
	d.getenv = func(k string) string {
		if k == "SLUICE_LOG_LEVEL" {
			return level
		}
		return e.getenv(k)
	}
	return logger(d)
}

func defaultData(e env) string {
	if d := e.getenv("SLUICE_DATA"); d != "" {
		return d
	}
	return ".sluice"
}
