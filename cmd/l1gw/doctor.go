package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/doctor"
	"github.com/l1gw/l1gw/limiter"
)

// doctorTimeout bounds a whole doctor run.
const doctorTimeout = time.Minute

// doctorCmd checks the configured Redis (internal/doctor): exit 0 with no
// error found (warnings allowed), 1 with any, 2 on bad usage or a config
// that cannot be loaded.
func doctorCmd(args, environ []string, stdout, stderr io.Writer) int {
	in, err := parseConfigFlags("doctor", args, environ, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "l1gw doctor:", err)
		return 2
	}
	cfg, err := config.Load(in)
	if err != nil {
		fmt.Fprintln(stderr, "l1gw doctor: invalid config:")
		fmt.Fprintln(stderr, err)
		return 2
	}
	if cfg.Redis.Mode == limiter.ModeMemory {
		fmt.Fprintf(stderr, "l1gw doctor: redis.mode is memory in %s: no Redis to check\n", source(in))
		return 2
	}
	// go-redis' own lines would repeat the findings' errors.
	limiter.SetRedisLog(slog.New(slog.DiscardHandler))
	clients, err := limiter.NewClients(cfg.Redis)
	if err != nil {
		fmt.Fprintln(stderr, "l1gw doctor:", err)
		return 2
	}
	defer clients.Close()
	ctx, cancel := context.WithTimeout(context.Background(), doctorTimeout)
	defer cancel()
	fmt.Fprintf(stdout, "l1gw doctor: redis.mode %s from %s\n", cfg.Redis.Mode, source(in))
	rep := doctor.Run(ctx, clients, doctor.Options{Redis: cfg.Redis, Budget: cfg.RateLimit.Budget})
	rep.Write(stdout)
	if rep.Count(doctor.Error) > 0 {
		return 1
	}
	return 0
}
