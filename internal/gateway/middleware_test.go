package gateway

import (
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func TestPanicIsRecovered(t *testing.T) {
	calls := 0
	h := chain(func(ctx *fasthttp.RequestCtx) {
		calls++
		if string(ctx.Path()) == "/boom" {
			ctx.Response.Header.Set("X-Partial", "yes")
			panic("boom")
		}
		ctx.SetBodyString("fine")
	}, recoverer(quiet))
	ln := fasthttputil.NewInmemoryListener()
	s := &fasthttp.Server{Handler: h}
	go s.Serve(ln)
	defer s.Shutdown()
	client := &fasthttp.HostClient{Addr: "mem", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	before := panicsTotal.Get()
	for _, tc := range []struct {
		path string
		want int
	}{{"/boom", 500}, {"/ok", 200}, {"/boom", 500}, {"/ok", 200}} {
		req, resp := &fasthttp.Request{}, &fasthttp.Response{}
		req.SetRequestURI("http://mem" + tc.path)
		if err := client.Do(req, resp); err != nil {
			t.Fatalf("%s: %v (the server must survive a panic)", tc.path, err)
		}
		if resp.StatusCode() != tc.want {
			t.Fatalf("%s: got %d; want %d", tc.path, resp.StatusCode(), tc.want)
		}
		if tc.want == 500 {
			if ct, body := string(resp.Header.ContentType()), string(resp.Body()); ct != "application/problem+json" || !strings.Contains(body, `"status":500`) {
				t.Fatalf("500 answer %q %s; want a problem+json body with status 500", ct, body)
			}
			if len(resp.Header.Peek("X-Partial")) > 0 {
				t.Fatal("500 carries headers from before the panic; want a clean response")
			}
		}
	}
	if got := panicsTotal.Get() - before; got != 2 {
		t.Fatalf("l1gw_panics_total grew by %d; want 2", got)
	}
}
