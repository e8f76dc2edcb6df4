package app

import (
	"bufio"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/internal/testkit"
)

// TestMalformedRequestsDoNotLogKeys: fasthttp's parse errors quote the
// request bytes, even told not to (an invalid header value); they hold API
// keys. The first malformed request is logged, redacted; the rest within
// the interval are counted, not logged.
func TestMalformedRequestsDoNotLogKeys(t *testing.T) {
	up, _ := startUpstream(t)
	logs := &testkit.SyncBuffer{}
	gw := startAppLog(t, loadConfig(t, up), slog.New(slog.NewJSONHandler(logs, nil)))
	send := func(payload string) {
		t.Helper()
		if resp := raw(t, gw.proxy, payload); resp.StatusCode() != 400 {
			t.Fatalf("got %d; want 400", resp.StatusCode())
		}
	}
	// A control byte in the key, quoted by fasthttp. Its worker logs after
	// answering: wait for the line before the others, whose workers would
	// otherwise race it to the one line of the interval.
	send("GET / HTTP/1.1\r\nHost: x\r\nX-API-Key: acme\x01key-SECRET\r\n\r\n")
	testkit.Until(t, 5*time.Second, "a log line of the malformed requests", func() bool {
		return strings.Contains(logs.String(), `"msg":"fasthttp"`)
	})
	for _, payload := range []string{
		"GET / HTTP/1.1\r\nX-API-Key: acme-key-SECRET\r\n\r\n", // no Host
		"GET / HTTP/1.1\r\nHost: x\r\nX-API-Key: acme-key-SECRET\r\nno colon\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-API-Key: acme\x00key-SECRET\r\n\r\n",
	} {
		send(payload)
	}
	time.Sleep(300 * time.Millisecond) // time for their workers to log, if they were to
	out := logs.String()
	if strings.Contains(out, "SECRET") {
		t.Fatalf("the logs hold an API key:\n%s", out)
	}
	if !strings.Contains(out, `"detail":"`) || !strings.Contains(out, "invalid header value") {
		t.Errorf("the first line is not the control byte's, under detail:\n%s", out)
	}
	if strings.Count(out, `"msg":`) != strings.Count(out, "\n") {
		t.Errorf("a line with a key msg twice (or none):\n%s", out)
	}
	if n := strings.Count(out, `"msg":"fasthttp"`); n != 1 {
		t.Errorf("%d fasthttp lines for 4 malformed requests within %v; want 1:\n%s", n, fastLogInterval, out)
	}
}

// TestForwardFailuresAreLoggedOncePerSecond: a client can fail forwards
// at its request rate (the upstream down, or its pool saturated by held
// streams): one warning a second goes to the log, counting the others;
// the metric counts every one.
func TestForwardFailuresAreLoggedOncePerSecond(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	gw := startAppLog(t, loadConfig(t, testkit.DeadURL(t)), slog.New(slog.NewJSONHandler(logs, nil)))
	const n = 20
	const refused = `l1gw_upstream_errors_total{upstream="main",kind="refused"}`
	before := metricValue(t, gw.admin, refused)
	start := time.Now()
	for i := range n {
		if got := call(t, gw.proxy, "GET", "/", "X-API-Key", "bulk-key").StatusCode(); got != 502 {
			t.Fatalf("request %d to a dead upstream: got %d; want 502", i+1, got)
		}
	}
	// At most one line per second begun, however slow the machine.
	most := int(time.Since(start)/time.Second) + 1
	out := logs.String()
	if got := strings.Count(out, `"msg":"forward failed"`); got < 1 || got > most {
		t.Fatalf("%d forward failed lines for %d failures in %v; want 1 to %d:\n%s", got, n, time.Since(start), most, out)
	}
	if !strings.Contains(out, `"dropped":`) {
		t.Errorf("the line does not say how many it held back:\n%s", out)
	}
	if got := metricValue(t, gw.admin, refused) - before; got != n {
		t.Errorf("%s grew by %v; want %d", refused, got, n)
	}
}

func TestRedactQuoted(t *testing.T) {
	in := `error when serving connection "127.0.0.1:1"<->"127.0.0.1:2": invalid header value "acme\x01key-SE\"CRET": buffer size=55`
	if got, want := redactQuoted(in), `error when serving connection "…"<->"…": invalid header value "…": buffer size=55`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestFailedForwardLeaksNothingOfTheUpstream: an upstream that sent its
// headers and then stalled gets a clean 504, without its cookies.
func TestFailedForwardLeaksNothingOfTheUpstream(t *testing.T) {
	addr := testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("HTTP/1.1 200 OK\r\nSet-Cookie: session=upstream-secret\r\nContent-Encoding: gzip\r\nContent-Length: 100\r\n\r\npartial"))
		time.Sleep(2 * time.Second)
	})
	gw := startApp(t, loadConfig(t, "http://"+addr))
	resp := call(t, gw.proxy, "GET", "/", "X-API-Key", "bulk-key")
	if resp.StatusCode() != fasthttp.StatusGatewayTimeout {
		t.Fatalf("got %d; want 504", resp.StatusCode())
	}
	if c := resp.Header.Peek("Set-Cookie"); len(c) > 0 || len(resp.Header.Peek("Content-Encoding")) > 0 {
		t.Fatalf("504 carries the upstream's headers: %q", resp.Header.String())
	}
	if st := string(resp.Header.StatusMessage()); st != "" && st != "Gateway Timeout" {
		t.Fatalf("status text %q; want Gateway Timeout", st)
	}
	problemBody(t, resp)
}

// TestAbsoluteFormRoutesByItsHost: routing and forwarding use the same
// host, whatever the Host header says.
func TestAbsoluteFormRoutesByItsHost(t *testing.T) {
	up, seen := startUpstream(t)
	cfg := loadConfig(t, up)
	cfg.Routes[0].Host = "public.test"
	gw := startApp(t, cfg)
	resp := raw(t, gw.proxy, "GET http://internal.test/abs HTTP/1.1\r\nHost: public.test\r\nX-API-Key: bulk-key\r\n\r\n")
	if resp.StatusCode() != 404 || seen.Count() != 0 {
		t.Fatalf("absolute-form request for another host: got %d, upstream saw %d; want 404 and nothing forwarded", resp.StatusCode(), seen.Count())
	}
	resp = raw(t, gw.proxy, "GET http://public.test/abs HTTP/1.1\r\nHost: public.test\r\nX-API-Key: bulk-key\r\n\r\n")
	if resp.StatusCode() != 200 || string(seen.Last().Host()) != "public.test" {
		t.Fatalf("absolute-form request for the routed host: got %d; want 200", resp.StatusCode())
	}
}
