package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// demoUpstream serves a small JSON echo for trying the gateway: what
// arrived, with the headers l1gw added.
func demoUpstream(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s := &fasthttp.Server{
		Handler:      demoHandler,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		IdleTimeout:  60 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		s.Shutdown()
	}()
	fmt.Fprintf(stderr, "demo upstream listening on %s\n", *listen)
	if err := s.ListenAndServe(*listen); err != nil {
		fmt.Fprintln(stderr, "demo-upstream:", err)
		return 1
	}
	return 0
}

func demoHandler(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/healthz" {
		ctx.SetBodyString("ok\n")
		return
	}
	headers := map[string]string{}
	for k, v := range ctx.Request.Header.All() {
		headers[string(k)] = string(v)
	}
	ctx.SetContentType("application/json")
	b, _ := json.MarshalIndent(map[string]any{
		"upstream": "l1gw demo",
		"method":   string(ctx.Method()),
		"uri":      string(ctx.RequestURI()),
		"headers":  headers,
	}, "", "  ")
	ctx.SetBody(append(b, '\n'))
}
