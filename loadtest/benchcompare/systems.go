package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// env is what starting a system needs.
type env struct {
	opts     options
	pin      pinning
	upstream string // the in-process upstream, 127.0.0.1:port
	self     string // this executable, re-run as the forwarder
	dir      string // temporary: gateway configs, redis-server's dir
}

// system is one thing benchcompare measures.
type system struct {
	name     string
	redis    bool // needs a redis-server
	enforces bool // limits the limited tenant
	// start starts the system (redisAddr is empty unless redis) and returns
	// its process (nil: nothing runs apart from the runner) and address.
	start func(ctx context.Context, e *env, redisAddr string) (*child, string, error)
}

// systems, in table order.
var systems = []system{
	{name: "upstream", start: func(_ context.Context, e *env, _ string) (*child, string, error) { return nil, e.upstream, nil }},
	{name: "bare", start: forwarderStarter(false)},
	{name: "naive", redis: true, enforces: true, start: forwarderStarter(false)},
	{name: "naive-autopipeline", redis: true, enforces: true, start: forwarderStarter(true)},
	{name: "l1gw-memory", enforces: true, start: gatewayStarter("l1gw-memory", "")},
	{name: "l1gw-exact", redis: true, enforces: true, start: gatewayStarter("l1gw-exact", "exact")},
	{name: "l1gw-replica", redis: true, enforces: true, start: gatewayStarter("l1gw-replica", "replica")},
	{name: "l1gw-window", redis: true, enforces: true, start: gatewayStarter("l1gw-window", "exact")},
	{name: "l1gw-quota", redis: true, enforces: true, start: gatewayStarter("l1gw-quota", "exact")},
}

// systemNames is every system's name, in table order.
func systemNames() []string {
	names := make([]string, len(systems))
	for i, s := range systems {
		names[i] = s.name
	}
	return names
}

// findSystem is the system called name.
func findSystem(name string) (system, bool) {
	for _, s := range systems {
		if s.name == name {
			return s, true
		}
	}
	return system{}, false
}

// forwarderStarter re-runs this executable as `forwarder` on the CPU of
// the system under test: bare without redisAddr, naive with it, its calls
// through go-redis' AutoPipeline when autopipe.
func forwarderStarter(autopipe bool) func(context.Context, *env, string) (*child, string, error) {
	return func(ctx context.Context, e *env, redisAddr string) (*child, string, error) {
		args := []string{forwarderCommand, "-listen", "127.0.0.1:0", "-upstream", e.upstream,
			"-limited-limit", strconv.FormatInt(e.opts.limitedLimit, 10)}
		if redisAddr != "" {
			args = append(args, "-redis", redisAddr)
		}
		if autopipe {
			args = append(args, "-autopipeline")
		}
		return startForwarder(ctx, e, args)
	}
}

// startForwarder starts the forwarder with args and waits for its
// listening line.
func startForwarder(ctx context.Context, e *env, args []string) (*child, string, error) {
	c, found, err := startChild("forwarder", exec.Command(e.self, args...), e.pin.sut, func(line string) (string, bool) {
		return strings.CutPrefix(line, "listening ")
	})
	if err != nil {
		return nil, "", err
	}
	v, err := c.await(ctx, found)
	var addr, metricsAddr string
	if err == nil {
		if _, err = fmt.Sscan(v, &addr, &metricsAddr); err != nil {
			err = fmt.Errorf("forwarder listening line %q: %w", v, err)
		}
	}
	if err == nil {
		err = errors.Join(harness.CheckLoopback(addr), harness.CheckLoopback(metricsAddr))
	}
	if err != nil {
		return nil, "", errors.Join(err, c.stop())
	}
	c.metrics = "http://" + metricsAddr + "/metrics"
	return c, addr, nil
}

// gatewayStarter starts the gateway binary with the memory store
// (consistency "") or standalone Redis at the given consistency.
func gatewayStarter(name, consistency string) func(context.Context, *env, string) (*child, string, error) {
	return func(ctx context.Context, e *env, redisAddr string) (*child, string, error) {
		if (consistency == "") != (redisAddr == "") {
			return nil, "", fmt.Errorf("%s: consistency %q with Redis address %q", name, consistency, redisAddr)
		}
		cfg := gatewayConfig(e.upstream, redisAddr, consistency, e.opts.limitedLimit, algorithmOf(name), benchKeys(e.opts.tenants))
		path, err := writeGatewayConfig(e.dir, name, cfg)
		if err != nil {
			return nil, "", err
		}
		return startGateway(ctx, e.opts.bin, path, e.pin.sut)
	}
}
