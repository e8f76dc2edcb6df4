package gateway

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
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

// slowVerdict admits every request after holding it for wait, as a
// decision waiting on Redis would.
type slowVerdict struct{ wait time.Duration }

func (s slowVerdict) Decide(_ context.Context, _ limiter.Request, v *degrade.Verdict) {
	time.Sleep(s.wait)
	*v = decided(degrade.Verdict{Allowed: true}, 99, time.Minute, 0)
}

func (slowVerdict) Release(limiter.Request, *degrade.Verdict) {}
func (slowVerdict) Renew(limiter.Request, *degrade.Verdict)   {}

// decisionsAtLeast counts the decisions l1gw_decision_duration_seconds
// holds, in all and in buckets that lie wholly at or above min.
func decisionsAtLeast(min time.Duration) (all, slow uint64) {
	decisionDuration.VisitNonZeroBuckets(func(vmrange string, n uint64) {
		all += n
		lo, _, _ := strings.Cut(vmrange, "...")
		if v, err := strconv.ParseFloat(lo, 64); err == nil && v >= min.Seconds() {
			slow += n
		}
	})
	return all, slow
}

// TestDecisionDurationMeasuresTheDecision: l1gw_decision_duration_seconds
// gets one sample per request that reached the limiter, as long as its
// decision took, and none for a request refused before it.
func TestDecisionDurationMeasuresTheDecision(t *testing.T) {
	const wait = 30 * time.Millisecond
	all0, slow0 := decisionsAtLeast(wait * 9 / 10)
	f := newServeFixture(t, slowVerdict{wait}, "bulk-key", "GET", "/x")
	for range 3 {
		if code := f.Serve(); code != 200 {
			t.Fatalf("status %d; want 200", code)
		}
	}
	unknown := newServeFixture(t, slowVerdict{wait}, "no-such-key", "GET", "/x")
	if code := unknown.Serve(); code != 401 {
		t.Fatalf("unknown key: status %d; want 401", code)
	}
	all1, slow1 := decisionsAtLeast(wait * 9 / 10)
	if all1-all0 != 3 || slow1-slow0 != 3 {
		t.Fatalf("l1gw_decision_duration_seconds got %d samples, %d of them of %v or more; want 3 and 3",
			all1-all0, slow1-slow0, wait*9/10)
	}
}
