package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
)

// errorResult is what a --json command prints when it fails before it has
// a result: a script reading stdout always gets one JSON object.
type errorResult struct {
	Status string `json:"status"` // "error"
	Error  string `json:"error"`
}

// jsonErrors makes every error of a command that takes --json come out as
// one JSON object on stdout when --json is given: a missing file, a bad
// flag, a locked data directory, a bad configuration. The message still
// goes to stderr for a person watching. A failed batch has printed its
// own result already (exitError without a message) and is left alone.
// shape builds the object from the message; nil gives an errorResult.
func jsonErrors(cmd func(context.Context, env, []string) error, shape func(msg string) any) func(context.Context, env, []string) error {
	if shape == nil {
		shape = func(msg string) any { return errorResult{Status: "error", Error: msg} }
	}
	return func(ctx context.Context, e env, args []string) error {
		err := cmd(ctx, e, args)
		if err == nil || !wantsJSON(args) {
			return err
		}
		var ex exitError
		if errors.As(err, &ex) && (ex.msg == "" || ex.code == 0) {
			return err
		}
		enc := json.NewEncoder(e.stdout)
		if werr := enc.Encode(shape(err.Error())); werr != nil {
			return errors.Join(err, werr)
		}
		return err
	}
}

// wantsJSON finds --json among args the way the flag package would (-json,
// --json, --json=true), also when parsing stopped at a bad flag before it.
func wantsJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "json" {
			continue
		}
		if !hasVal {
			return true
		}
		b, err := strconv.ParseBool(val)
		return err == nil && b
	}
	return false
}

// resultLogger is the logger of a command that reports its batch itself.
// Under --json, unless SLUICE_LOG_LEVEL asks for more, it logs errors
// only: the batch's outcome, a failure's reason included, is in the JSON
// object, and the pipeline's "batch failed" warning would repeat it.
func resultLogger(e env, asJSON bool) *slog.Logger {
	if !asJSON {
		return logger(e)
	}
	return loggerDefault(e, "error")
}
