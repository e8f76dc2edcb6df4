// Command l1gw is the rate-limiting gateway.
//
//	l1gw [serve] [--config FILE] [--set key.path=value]...   run the gateway
//	l1gw check-config [--config FILE] [--set key.path=value]...
//	l1gw doctor --config FILE [--set key.path=value]...      check the configured Redis
//	l1gw hash-key KEY                                       print a key_hashes entry
//	l1gw admin [--addr ADDR] COMMAND                        call a running gateway's admin API
//	l1gw demo-upstream [--listen ADDR]                       a small upstream for trying l1gw
//	l1gw version
//
// Without --config, l1gw runs the embedded demo config.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/l1gw/l1gw/config"
	"github.com/l1gw/l1gw/internal/app"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs explicit; it returns the exit code.
func run(args, environ []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, environ, stderr)
	case "check-config":
		return checkConfig(args, environ, stdout, stderr)
	case "doctor":
		return doctorCmd(args, environ, stdout, stderr)
	case "hash-key":
		if len(args) != 1 {
			fmt.Fprintln(stderr, "usage: l1gw hash-key KEY")
			return 2
		}
		fmt.Fprintln(stdout, tenants.HashKey(args[0]))
		return 0
	case "demo-upstream":
		return demoUpstream(args, stderr)
	case "admin":
		return adminCmd(args, environ, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "l1gw", version)
		return 0
	default:
		fmt.Fprintf(stderr, "l1gw: unknown command %q; want serve, check-config, doctor, hash-key, admin, demo-upstream or version\n", cmd)
		return 2
	}
}

// setFlags collects repeated --set flags.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, " ") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

// parseConfigFlags reads --config and --set.
func parseConfigFlags(name string, args, environ []string, stderr io.Writer) (config.Input, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML config file (default: the embedded demo)")
	var sets setFlags
	fs.Var(&sets, "set", "override one key: key.path=value (repeatable; last wins)")
	if err := fs.Parse(args); err != nil {
		return config.Input{}, err
	}
	if fs.NArg() > 0 {
		return config.Input{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return config.Input{File: *file, Environ: environ, Sets: sets}, nil
}

func checkConfig(args, environ []string, stdout, stderr io.Writer) int {
	in, err := parseConfigFlags("check-config", args, environ, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "l1gw check-config:", err)
		return 2
	}
	if _, err := config.Load(in); err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintf(stderr, "%d problem(s):\n", len(errs))
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, "config ok:", source(in))
	return 0
}

func source(in config.Input) string {
	if in.File == "" {
		return config.DemoSource
	}
	return in.File
}

func serve(args, environ []string, stderr io.Writer) int {
	in, err := parseConfigFlags("serve", args, environ, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "l1gw:", err)
		return 2
	}
	// Registered before anything else: unhandled, SIGHUP would end the
	// process; one that arrives while starting reloads once serving.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var loaded [sha256.Size]byte
	if in.File != "" {
		// Before the load: a change after it is then seen as one.
		loaded, _ = app.HashFile(in.File)
	}
	cfg, err := config.Load(in)
	if err != nil {
		fmt.Fprintln(stderr, "l1gw: invalid config:")
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	limiter.SetRedisLog(log)
	log.Info("starting", "version", version, "config", source(in), "store", cfg.Redis.Mode)
	gw, err := app.Build(cfg, log)
	if err != nil {
		log.Error("build", "err", err.Error())
		return 1
	}
	proxyLn, adminLn, err := gw.Listen()
	if err != nil {
		log.Error("listen", "err", err.Error())
		return 1
	}
	gw.Reloads(func() (*config.Config, error) { return config.Load(in) }, in.File, loaded)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go reloadOnHangup(ctx, hup, gw)
	if err := gw.Run(ctx, proxyLn, adminLn); err != nil {
		log.Error("serve", "err", err.Error())
		return 1
	}
	return 0
}

// reloadOnHangup reloads the config at each SIGHUP until ctx ends.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, a *app.App) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.Reload("signal")
		}
	}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
