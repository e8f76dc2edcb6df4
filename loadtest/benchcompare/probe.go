package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// probeCommand is the hidden subcommand that watches how promptly Redis
// itself answers while a system is measured: harness.Probe in a process
// of its own, pinned to the runner's CPU. Its worst round trip says
// whether Redis was healthy: a gateway that degraded decisions while the
// probe saw Redis answer in well under a budget degraded them on its own
// account.
const probeCommand = "redisprobe"

// probeMain runs `redisprobe -addr ADDR`: it prints "probing" once
// connected and, when stopped by SIGTERM or SIGINT, "probed " and the
// result as JSON.

func probeMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(probeCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "redis-server 127.0.0.1:port")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	res, err := harness.Probe(ctx, *addr, func() { fmt.Fprintln(stdout, "probing") })
	if err != nil {
		fmt.Fprintln(stderr, "benchcompare redisprobe:", err)
		return 1
	}
	b, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "probed %s\n", b)
	return 0
}

// redisProbe is a running probe child.
type redisProbe struct{ *child }

// startProbe starts the probe of the redis-server at addr on cpu and
// returns once it is connected.
func startProbe(ctx context.Context, self string, cpu int, addr string) (*redisProbe, error) {
	c, found, err := startChild("redis probe", exec.Command(self, probeCommand, "-addr", addr), cpu, func(line string) (string, bool) {
		return "", line == "probing"
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.await(ctx, found); err != nil {
		return nil, errors.Join(err, c.stop())
	}
	return &redisProbe{c}, nil
}

// finish stops the probe and returns what it saw.
func (p *redisProbe) finish() (harness.ProbeResult, error) {
	var res harness.ProbeResult
	if err := p.stop(); err != nil {
		return res, err
	}
	for _, line := range strings.Split(p.out.Tail(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "probed "); ok {
			if err := json.Unmarshal([]byte(v), &res); err != nil {
				return res, fmt.Errorf("redis probe result %q: %w", v, err)
			}
			return res, nil
		}
	}
	return res, fmt.Errorf("redis probe printed no result; output:\n%s", p.out.Tail())
}
