package main

import (
	"context"
	"io"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// runScenarioT runs fn as scenario name in a goroutine of its own, with
// the command's stand-in for a *testing.T, and returns the errors it
// reported, once it and its cleanups are done.
func runScenarioT(ctx context.Context, name string, log io.Writer, fn func(T)) []string {
	t := harness.NewT(ctx, name, log)
	t.Go(func() {
		defer t.Cleanups()
		fn(t)
	})
	return t.Errors()
}
