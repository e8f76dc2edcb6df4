package main

import (
	"os"
	"testing"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// TestMain lets the test binary stand in for the command: the probes of
// Redis run as its children (harness.ProbeCommand).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == harness.ProbeCommand {
		os.Exit(harness.ProbeMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
