package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

// redisServer is a redis-server child on a loopback port, with no
// persistence: started empty for each measurement.
type redisServer struct {
	*child
	addr string
}

// redisNice is redis-server's priority beside the runner.
const redisNice = -10

// startRedis starts redis-server on a free 127.0.0.1 port on cpu and
// returns once it answers PING. A port taken between the probe and the
// bind is retried on another.
func startRedis(ctx context.Context, cpu int, dir string) (*redisServer, error) {
	var errs []error
	for range 3 {
		rs, err := startRedisOnce(ctx, cpu, dir)
		if err == nil {
			return rs, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || !strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func startRedisOnce(ctx context.Context, cpu int, dir string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "notice",
		"--latency-monitor-threshold", strconv.Itoa(latencyThresholdMs))
	c, found, err := startChild("redis-server", cmd, cpu, func(line string) (string, bool) {
		return "", strings.Contains(line, "Ready to accept connections")
	})
	if err != nil {
		return nil, fmt.Errorf("%w (is redis-server on PATH? make test-deps installs it)", err)
	}
	rs := &redisServer{child: c, addr: addr}
	if _, err := c.await(ctx, found); err != nil {
		return nil, errors.Join(err, c.stop())
	}
	// Redis shares its CPU with the runner, which the closed loop
	// saturates; a production Redis has a core of its own. Its event loop
	// (the main thread) gets nice -10, so the load generator does not hold
	// it off for milliseconds at a time. Without root this fails: said on
	// stderr.
	if err := unix.Setpriority(unix.PRIO_PROCESS, c.cmd.Process.Pid, redisNice); err != nil {
		fmt.Fprintf(os.Stderr, "benchcompare: redis-server stays at nice 0: %v\n", err)
	}
	if err := rs.ping(ctx); err != nil {
		return nil, errors.Join(err, c.stop())
	}
	return rs, nil
}

// ping checks that the server answers on its address.
func (rs *redisServer) ping(ctx context.Context) error {
	rdb := rs.client()
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("PING redis-server at %s: %w", rs.addr, err)
	}
	return nil
}

// client is a client of the server for a few commands of the runner's:
// no retries, a second to dial. The caller closes it.
func (rs *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: rs.addr, MaxRetries: -1, DialTimeout: time.Second})
}

// latencyThresholdMs is the threshold of Redis' own latency monitor: an
// event of its event loop (a command, an expiry cycle, a fork …) that
// takes this long or longer is recorded (LATENCY LATEST).
const latencyThresholdMs = 50

// latencySpikes is the worst of each event Redis' latency monitor
// recorded since its start, in ms by event name: empty when none took
// latencyThresholdMs. A silence of Redis that is none of these was not of
// its own making (its process not run, or its socket not served).
func (rs *redisServer) latencySpikes(ctx context.Context) (map[string]int64, error) {
	rdb := rs.client()
	defer rdb.Close()
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	v, err := rdb.Do(lctx, "LATENCY", "LATEST").Slice()
	if err != nil {
		return nil, fmt.Errorf("LATENCY LATEST at %s: %w", rs.addr, err)
	}
	return parseLatencyLatest(v)
}

// parseLatencyLatest reads LATENCY LATEST's reply: one entry per event,
// [name, unix time, latest ms, max ms].
func parseLatencyLatest(v []any) (map[string]int64, error) {
	out := map[string]int64{}
	for _, e := range v {
		f, ok := e.([]any)
		if !ok || len(f) < 4 {
			return nil, fmt.Errorf("LATENCY LATEST entry %v: want [event, time, latest, max]", e)
		}
		name, ok1 := f[0].(string)
		worst, ok2 := f[3].(int64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("LATENCY LATEST entry %v: want [event, time, latest, max]", e)
		}
		out[name] = worst
	}
	return out, nil
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("find a free port: listener address %v is not TCP", ln.Addr())
	}
	return a.Port, nil
}
