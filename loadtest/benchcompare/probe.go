package main

import (
	"context"
	"errors"
	"os/exec"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// redisProbe is a running probe child: harness.Probe in a process of its
// own (harness.ProbeMain), pinned to the runner's CPU. Its worst round
// trip says whether Redis was healthy: a gateway that degraded decisions
// while the probe saw Redis answer in well under a budget degraded them
// on its own account.
type redisProbe struct{ *child }

// startProbe starts the probe of the redis-server at addr on cpu and
// returns once it is connected.
func startProbe(ctx context.Context, self string, cpu int, addr string) (*redisProbe, error) {
	c, found, err := startChild("redis probe", exec.Command(self, harness.ProbeCommand, "-addr", addr), cpu, harness.ProbeReady)
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
	if err := p.stop(); err != nil {
		return harness.ProbeResult{}, err
	}
	return harness.ParseProbed(p.out.Tail())
}
