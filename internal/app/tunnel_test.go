package app

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/internal/testkit"
	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// echoUpgrade is a loopback upstream that answers an upgrade request
// with 101 and then echoes every byte; a request without Upgrade gets
// 426. It keeps each request head it read, request line first.
type echoUpgrade struct {
	addr  string
	heads chan string
}

func startEchoUpgrade(t *testing.T) *echoUpgrade {
	e := &echoUpgrade{heads: make(chan string, 16)}
	e.addr = testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		var b strings.Builder
		b.WriteString(req.Method + " " + req.RequestURI + " " + req.Proto + "\r\n")
		req.Header.Write(&b)
		e.heads <- b.String()
		if req.Header.Get("Upgrade") == "" {
			io.WriteString(c, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n")
		io.Copy(c, br)
	})
	return e
}

const upgradeHead = "GET /ws HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

// TestUpgradeTunnels: an upgrade request is authenticated and decided like
// any other, then tunnelled: the upstream's 101 reaches the client with
// the rate-limit headers, bytes flow both ways, the tunnel counts once
// against the limits and in l1gw_tunnels_open while it lasts.
func TestUpgradeTunnels(t *testing.T) {
	e := startEchoUpgrade(t)
	gw := startApp(t, loadConfig(t, "http://"+e.addr))

	c := dial(t, gw.proxy)
	c.send(upgradeHead + "\r\n")
	if resp := c.response(); resp.StatusCode() != 401 {
		t.Fatalf("upgrade without a key: %d; want 401", resp.StatusCode())
	}

	c = dial(t, gw.proxy)
	c.send(upgradeHead + "X-API-Key: acme-key\r\n\r\n")
	if line := c.statusLine(); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("got %q; want the upstream's 101", line)
	}
	head := map[string]string{}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		head[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	if head["sec-websocket-accept"] != "test" || head["x-ratelimit-status"] != "ok" || head["x-ratelimit-remaining"] != "2" {
		t.Fatalf("101 headers %v; want the upstream's accept and the rate-limit headers (2 of 3 left)", head)
	}
	upHead := <-e.heads
	for _, want := range []string{"Upgrade: websocket", "X-L1gw-Tenant: acme", "X-Forwarded-For: 127.0.0.1"} {
		if !strings.Contains(upHead, want) {
			t.Errorf("upstream head lacks %q:\n%s", want, upHead)
		}
	}
	if strings.Contains(upHead, "acme-key") {
		t.Errorf("the key reached the upstream:\n%s", upHead)
	}
	for i := range 20 {
		msg := strings.Repeat("x", i+1)
		c.send(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c.br, got); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %q, %v; want %q", i, got, err, msg)
		}
	}
	metric := func() string {
		for _, l := range strings.Split(string(call(t, gw.admin, "GET", "/metrics").Body()), "\n") {
			if strings.HasPrefix(l, "l1gw_tunnels_open ") {
				return l
			}
		}
		return ""
	}
	if m := metric(); m != "l1gw_tunnels_open 1" {
		t.Errorf("%q while the tunnel is open; want l1gw_tunnels_open 1", m)
	}
	// 20 messages later the tenant still has 2 of its 3: the tunnel
	// counted once.
	for i := range 2 {
		if resp := call(t, gw.proxy, "GET", "/after", "X-API-Key", "acme-key"); resp.StatusCode() != 426 {
			t.Fatalf("request %d after the tunnel: %d; want the upstream's 426 (admitted)", i+1, resp.StatusCode())
		}
	}
	if resp := call(t, gw.proxy, "GET", "/after", "X-API-Key", "acme-key"); resp.StatusCode() != 429 {
		t.Fatalf("4th request: %d; want 429", resp.StatusCode())
	}
	c.c.Close()
	testkit.Until(t, 5*time.Second, "the tunnel closed", func() bool { return metric() == "l1gw_tunnels_open 0" })
}

// TestUpgradeHidesTheKeyParameter: an upgrade whose key came in the
// tenants.key_query parameter reaches its target without it.
func TestUpgradeHidesTheKeyParameter(t *testing.T) {
	e := startEchoUpgrade(t)
	gw := startApp(t, loadConfig(t, "http://"+e.addr, "tenants.key_query=user_key"))
	c := dial(t, gw.proxy)
	c.send(strings.Replace(upgradeHead, "/ws", "/ws?user_key=acme-key&v=2", 1) + "\r\n")
	if line := c.statusLine(); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("got %q; want the upstream's 101", line)
	}
	upHead := <-e.heads
	if line, _, _ := strings.Cut(upHead, "\r\n"); line != "GET /ws?v=2 HTTP/1.1" {
		t.Errorf("upstream request line %q; want GET /ws?v=2 HTTP/1.1", line)
	}
	if strings.Contains(upHead, "acme-key") {
		t.Errorf("the key reached the upstream:\n%s", upHead)
	}
}

// TestUpgradeSendsThePathAsSent: an upgrade's target reaches the
// upstream as the client wrote it, escapes and all, as a forward's does
// (the routes and limits match the decoded path either way).
func TestUpgradeSendsThePathAsSent(t *testing.T) {
	e := startEchoUpgrade(t)
	gw := startApp(t, loadConfig(t, "http://"+e.addr))
	const target = "/ws/a%41b%7e+c%2B%26?x=%7e;y&s=a%20b"
	c := dial(t, gw.proxy)
	c.send(strings.Replace(upgradeHead, "/ws", target, 1) + "X-API-Key: acme-key\r\n\r\n")
	if line := c.statusLine(); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("got %q; want the upstream's 101", line)
	}
	if line, _, _ := strings.Cut(<-e.heads, "\r\n"); line != "GET "+target+" HTTP/1.1" {
		t.Errorf("upstream request line %q; want GET %s HTTP/1.1", line, target)
	}
}

// TestTunnelIdleTimeout: a tunnel with no byte either way for
// server.tunnel_idle_timeout is closed.
func TestTunnelIdleTimeout(t *testing.T) {
	c := openTunnel(t, "server.tunnel_idle_timeout=300ms")
	// closed waits 3 s; without the 300 ms idle timeout the tunnel would
	// stay open its default 60 s.
	if !c.closed() {
		t.Fatal("idle tunnel still open")
	}
}

// TestTunnelMaxDuration: a busy tunnel is closed at
// server.tunnel_max_duration all the same.
func TestTunnelMaxDuration(t *testing.T) {
	c := openTunnel(t, "server.tunnel_max_duration=300ms")
	// Keep it busy for up to 5 s: it must be cut well before.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := io.WriteString(c.c, "ping"); err != nil {
			return // cut
		}
		got := make([]byte, 4)
		c.c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := io.ReadFull(c.br, got); err != nil {
			return // cut
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("a busy tunnel outlived server.tunnel_max_duration (300 ms) by 5 s")
}

// openTunnel starts the echo upstream and a gateway with sets, and opens a
// tunnel through it as tenant bulk: the 101's head read whole.
func openTunnel(t *testing.T, sets ...string) *conn {
	t.Helper()
	e := startEchoUpgrade(t)
	gw := startApp(t, loadConfig(t, "http://"+e.addr, sets...))
	c := dial(t, gw.proxy)
	c.send(upgradeHead + "X-API-Key: bulk-key\r\n\r\n")
	if line := c.statusLine(); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("got %q; want 101", line)
	}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the 101's head: %v", err)
		}
		if line == "\r\n" {
			return c
		}
	}
}

// TestBusyTunnelOutlivesTheIdleTimeout: a tunnel in use stays open past
// server.tunnel_idle_timeout, however long it is used.
func TestBusyTunnelOutlivesTheIdleTimeout(t *testing.T) {
	c := openTunnel(t, "server.tunnel_idle_timeout=300ms")
	for i := range 12 { // 1.2 s of traffic, 100 ms apart
		c.send("ping")
		got := make([]byte, 4)
		if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "ping" {
			t.Fatalf("echo %d: %q, %v; want the tunnel still open", i, got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSilentUpgradeTargetIs504: a target that takes an upgrade and never
// answers gets the upstream's timeout, as any request does, not the
// tunnel's idle timeout (60 s): 504.
func TestSilentUpgradeTargetIs504(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // read nothing, answer nothing
		}
	}()
	gw := startApp(t, loadConfig(t, "http://"+ln.Addr().String(), "upstreams.main.timeout=300ms"))
	const timeouts = `l1gw_upstream_errors_total{upstream="main",kind="timeout"}`
	before := metricValue(t, gw.admin, timeouts)
	c := dial(t, gw.proxy)
	c.send(upgradeHead + "X-API-Key: bulk-key\r\n\r\n")
	if resp := c.response(); resp.StatusCode() != 504 {
		t.Fatalf("got %d %q; want 504 within the upstream's timeout", resp.StatusCode(), resp.Body())
	}
	if got := metricValue(t, gw.admin, timeouts) - before; got != 1 {
		t.Errorf("%s grew by %v; want 1, the handshake's timeout", timeouts, got)
	}
}

// TestUpgradeRefusals: an upgrade that cannot be tunnelled cleanly, or
// whose target cannot be reached, is answered and its connection closed:
// nothing of it is read as a next request.
func TestUpgradeRefusals(t *testing.T) {
	e := startEchoUpgrade(t)
	gw := startApp(t, loadConfig(t, "http://"+e.addr))
	dead := startApp(t, loadConfig(t, testkit.DeadURL(t)))
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: gw\r\nX-API-Key: bulk-key\r\n\r\n"
	for _, tc := range []struct {
		name, addr, req string
		status          int
	}{
		{"a body", gw.proxy, upgradeHead + "X-API-Key: bulk-key\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled, 400},
		{"HTTP/1.0", gw.proxy, strings.Replace(upgradeHead, "HTTP/1.1", "HTTP/1.0", 1) + "X-API-Key: bulk-key\r\n\r\n", 400},
		{"target down", dead.proxy, upgradeHead + "X-API-Key: bulk-key\r\n\r\n" + smuggled, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, tc.addr)
			c.send(tc.req)
			if resp := c.response(); resp.StatusCode() != tc.status {
				t.Fatalf("got %d; want %d", resp.StatusCode(), tc.status)
			}
			if !c.closed() {
				t.Error("connection open after a refused upgrade; want it closed")
			}
		})
	}
	select {
	case head := <-e.heads:
		t.Fatalf("the upstream got a request:\n%s", head)
	default:
	}
}

// TestTunnelEndsWithItsUpstream: when the target closes the tunnel, the
// client's side closes at once, not at the idle timeout.
func TestTunnelEndsWithItsUpstream(t *testing.T) {
	addr := testkit.Listen(t, func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nbye")
		c.Close()
	})
	gw := startApp(t, loadConfig(t, "http://"+addr)) // idle timeout 60 s
	c := dial(t, gw.proxy)
	c.send(upgradeHead + "X-API-Key: bulk-key\r\n\r\n")
	if line := c.statusLine(); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("got %q; want 101", line)
	}
	if !c.closed() { // waits 3 s
		t.Fatal("client side still open after the target closed; want it closed with it")
	}
}

// TestRefusedUpgradeIsPassedOn: a target that answers an upgrade with
// anything but 101 has its answer passed on, hop-by-hop headers stripped,
// and the connection closed.
func TestRefusedUpgradeIsPassedOn(t *testing.T) {
	addr := testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nConnection: X-Hop\r\nX-Hop: 1\r\nContent-Length: 6\r\n\r\ndenied")
	})
	gw := startApp(t, loadConfig(t, "http://"+addr))
	c := dial(t, gw.proxy)
	c.send(upgradeHead + "X-API-Key: bulk-key\r\n\r\n")
	resp := c.response()
	if resp.StatusCode() != 403 || string(resp.Body()) != "denied" || len(resp.Header.Peek("X-Hop")) > 0 {
		t.Fatalf("got %d %q (X-Hop %q); want the target's 403 without its hop-by-hop headers", resp.StatusCode(), resp.Body(), resp.Header.Peek("X-Hop"))
	}
	if !c.closed() {
		t.Error("connection open after a refused upgrade; want it closed")
	}
}

// switching is an upstream that answers an upgrade request with the
// bytes of answer, then echoes.
func switching(t *testing.T, answer string) string {
	return testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, answer)
		io.Copy(c, br)
	})
}

// readHead reads a response head from c: its status line and its fields,
// each name in lower case with every value.
func readHead(t *testing.T, c *conn) (string, map[string][]string) {
	t.Helper()
	status := c.statusLine()
	head := map[string][]string{}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", status, err)
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			return status, head
		}
		k, v, _ := strings.Cut(line, ":")
		head[strings.ToLower(k)] = append(head[strings.ToLower(k)], strings.TrimSpace(v))
	}
}

// TestUpgradeAnswerIsCleaned: a 101's fields are cleaned as any answer's:
// the upstream's hop-by-hop fields go, its copies of the fields the
// gateway sets give way to the gateway's one, and the switch keeps
// Connection: Upgrade and the upstream's Upgrade. An interim 103 before
// it is skipped, as on any request.
func TestUpgradeAnswerIsCleaned(t *testing.T) {
	addr := switching(t, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Secret-Hop\r\nX-Secret-Hop: 1\r\n"+
		"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-RateLimit-Remaining: 888888\r\nx-ratelimit-status: spoofed1\r\n"+
		"X-RateLimit-Status: spoofed2\r\nX-Request-Id: spoof-a\r\nX-Request-Id: spoof-b\r\nSec-WebSocket-Accept: test\r\n\r\n")
	gw := startApp(t, loadConfig(t, "http://"+addr))
	c := dial(t, gw.proxy)
	c.send(upgradeHead + "X-API-Key: bulk-key\r\n\r\n")
	status, head := readHead(t, c)
	if status != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("got %q; want the upstream's 101 past its 103", status)
	}
	for _, gone := range []string{"x-secret-hop", "keep-alive", "proxy-authenticate"} {
		if v, ok := head[gone]; ok {
			t.Errorf("%s: %q reached the client; want it dropped", gone, v)
		}
	}
	for name, bad := range map[string]string{"x-ratelimit-status": "spoof", "x-request-id": "spoof", "x-ratelimit-remaining": "888888"} {
		if vs := head[name]; len(vs) != 1 || strings.HasPrefix(vs[0], bad) {
			t.Errorf("%s: %q; want the gateway's one", name, vs)
		}
	}
	if !slices.Equal(head["connection"], []string{"Upgrade"}) || !slices.Equal(head["upgrade"], []string{"websocket"}) || head["sec-websocket-accept"] == nil {
		t.Errorf("the switch's fields: %q; want Connection: Upgrade, Upgrade: websocket and the upstream's Sec-WebSocket-Accept", head)
	}
	c.send("ping")
	if got := make([]byte, 4); !func() bool { _, err := io.ReadFull(c.br, got); return err == nil && string(got) == "ping" }() {
		t.Error("no echo through the tunnel")
	}
}

// TestUpgradeToWhatWasNotAskedIs502: a 101 that names no protocol, or
// one the client did not ask for, is no switch the client can use: 502,
// and the connection closed.
func TestUpgradeToWhatWasNotAskedIs502(t *testing.T) {
	for name, answer := range map[string]string{
		"no Upgrade":      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
		"another Upgrade": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			gw := startApp(t, loadConfig(t, "http://"+switching(t, answer)))
			c := dial(t, gw.proxy)
			c.send(upgradeHead + "X-API-Key: bulk-key\r\n\r\n")
			if resp := c.response(); resp.StatusCode() != 502 {
				t.Fatalf("got %d; want 502", resp.StatusCode())
			}
			if !c.closed() {
				t.Error("connection open; want it closed")
			}
		})
	}
}

// TestUpgradeOnlyToTheListedProtocols: only server.tunnel_protocols are
// tunnelled. An upgrade to h2c, which an upstream that answers it would
// take as HTTP/2 requests past the limits and carrying the client's own
// X-L1gw-Tenant, goes as a plain request without its Upgrade and the
// fields its Connection names; one naming h2c and websocket offers the
// upstream websocket alone; with no protocol listed, nothing is
// tunnelled.
func TestUpgradeOnlyToTheListedProtocols(t *testing.T) {
	const h2c = "GET /h2 HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-API-Key: bulk-key\r\n"
	for _, tc := range []struct {
		name, head string
		sets       []string
		status     int
		upgrade    string // the Upgrade the upstream got ("": none)
	}{
		{"h2c", h2c + "Upgrade: h2c\r\n", nil, 426, ""},
		{"h2c and websocket", h2c + "Upgrade: h2c, websocket\r\n", nil, 101, "websocket"},
		{"websocket with none listed", upgradeHead + "X-API-Key: bulk-key\r\n", []string{"server.tunnel_protocols=other"}, 426, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEchoUpgrade(t)
			gw := startApp(t, loadConfig(t, "http://"+e.addr, tc.sets...))
			c := dial(t, gw.proxy)
			c.send(tc.head + "\r\n")
			if resp := c.response(); resp.StatusCode() != tc.status {
				t.Fatalf("got %d; want %d", resp.StatusCode(), tc.status)
			}
			upHead := <-e.heads
			got := ""
			for line := range strings.Lines(upHead) {
				if k, v, _ := strings.Cut(strings.TrimSpace(line), ":"); strings.EqualFold(k, "Upgrade") {
					got = strings.TrimSpace(v)
				}
				if strings.HasPrefix(strings.ToLower(line), "http2-settings") {
					t.Errorf("HTTP2-Settings reached the upstream:\n%s", upHead)
				}
			}
			if got != tc.upgrade {
				t.Fatalf("the upstream got Upgrade %q; want %q:\n%s", got, tc.upgrade, upHead)
			}
		})
	}
}

// openTunnelAs opens a tunnel through addr under key, and fails on any
// answer but 101.
func openTunnelAs(t *testing.T, addr, key string) *conn {
	t.Helper()
	c := dial(t, addr)
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	c.send(upgradeHead + "X-API-Key: " + key + "\r\n\r\n")
	if status, _ := readHead(t, c); status != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("got %q; want 101", status)
	}
	return c
}

// TestShutdownWaitsForTunnelsThenEndsThemAndGivesBackTheirLeases: a
// stopping gateway lets its tunnels run through the shutdown grace, then
// ends them, and their leases are given back before it stops: another
// gateway admits the tenant at once. fasthttp does not count a hijacked
// connection, so shutdown cut the tunnels at once and their leases
// stayed in Redis until lease_ttl (found in review).
func TestShutdownWaitsForTunnelsThenEndsThemAndGivesBackTheirLeases(t *testing.T) {
	e := startEchoUpgrade(t)
	srv := redistest.Server(t)
	sets := []string{"redis.mode=standalone", "redis.addrs=" + srv.Addr(), "ratelimit.key_prefix=tun",
		"ratelimit.budget=3s", "redis.read_timeout=2s", "server.shutdown_grace=700ms"}
	a := startApp(t, loadConfig(t, "http://"+e.addr, sets...))
	b := startApp(t, loadConfig(t, "http://"+e.addr, sets...))
	var open []*conn
	for range 5 { // crowd: concurrency 5
		open = append(open, openTunnelAs(t, a.proxy, "crowd-key"))
	}
	start := time.Now()
	stopped := make(chan time.Duration, 1)
	go func() {
		a.stop(t)
		stopped <- time.Since(start)
	}()
	time.Sleep(300 * time.Millisecond) // within the grace: the tunnels still carry
	for _, c := range open {
		c.send("ping")
		got := make([]byte, 4)
		if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "ping" {
			t.Fatalf("a tunnel within the shutdown grace: %q, %v; want its echo", got, err)
		}
	}
	took := <-stopped
	for _, c := range open {
		c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.br.ReadByte(); err == nil {
			t.Fatal("a tunnel still open after its gateway stopped")
		}
	}
	key := limiter.LeaseKey("tun", "crowd", tenants.ConcurrencyRule)
	if n := srv.Client(t).ZCard(context.Background(), key).Val(); n != 0 || took < 700*time.Millisecond {
		t.Fatalf("stopped after %s with 5 tunnels open; %d leases left in Redis; want the 700ms grace waited and 0 left", took.Round(time.Millisecond), n)
	}
	if code := call(t, b.proxy, "GET", "/x", "X-API-Key", "crowd-key").StatusCode(); code != 426 {
		t.Fatalf("the other gateway, for the tenant whose tunnels ended: %d; want the upstream's 426", code)
	}
}

// TestATunnelHoldsItsLeasePastLeaseTTL: an open tunnel renews its lease,
// so a second one under concurrency 1 is refused after lease_ttl as
// before it; once the first closes, the next is admitted. A tunnel took
// its lease once, and stopped counting after lease_ttl (found in
// review).
func TestATunnelHoldsItsLeasePastLeaseTTL(t *testing.T) {
	e := startEchoUpgrade(t)
	gw := startApp(t, loadConfig(t, "http://"+e.addr, "tenants.lease_ttl=600ms", "plans.five_at_once.concurrency=1"))
	first := openTunnelAs(t, gw.proxy, "crowd-key")
	time.Sleep(1500 * time.Millisecond) // over twice lease_ttl, the tunnel open
	second := dial(t, gw.proxy)
	second.send(upgradeHead + "X-API-Key: crowd-key\r\n\r\n")
	if line := second.statusLine(); line != "HTTP/1.1 429 Too Many Requests" {
		t.Fatalf("a second tunnel while the first is open, under concurrency 1, past lease_ttl: %q; want 429", line)
	}
	first.c.Close()
	testkit.Until(t, 5*time.Second, "a tunnel admitted once the first closed", func() bool {
		c := dial(t, gw.proxy)
		defer c.c.Close()
		c.send(upgradeHead + "X-API-Key: crowd-key\r\n\r\n")
		return c.statusLine() == "HTTP/1.1 101 Switching Protocols"
	})
}

// TestATunnelEndsWithItsTenant: a reload that removes a tenant ends its
// open tunnels (its key is refused from then on, and its tunnel no longer
// carries anything); another tenant's tunnel goes on. A tunnel outlived
// the removal, for up to tunnel_max_duration (found in review).
func TestATunnelEndsWithItsTenant(t *testing.T) {
	e := startEchoUpgrade(t)
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: "http://" + e.addr, limit: 1000}
	f.extra = []string{"{id: acme, plan: small, keys: [acme-key]}"}
	gw, _ := startReloadable(t, f)
	acme := openTunnelAs(t, gw.proxy, "acme-key")
	other := openTunnelAs(t, gw.proxy, "bulk-key")
	f.extra = nil // acme removed
	f.write(t)
	if resp := adminReload(t, gw); resp.StatusCode() != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode(), resp.Body())
	}
	if code := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key").StatusCode(); code != 401 {
		t.Fatalf("acme-key after its tenant's removal: %d; want 401", code)
	}
	acme.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(acme.br); err != nil {
		t.Fatalf("the removed tenant's tunnel: %v; want it ended (EOF) within 5 s", err)
	}
	other.send("ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(other.br, got); err != nil || string(got) != "ping" {
		t.Fatalf("another tenant's tunnel after the reload: %q, %v; want its echo", got, err)
	}
}

// TestATunnelEndsWhenItsTenantGoesDuringTheHandshake: the tenant removed
// while the upstream is still answering the upgrade, after the request
// was admitted, loses the tunnel as well: its watcher starts from the
// tenants the request was admitted under (it started from those in force
// when it started, and missed the change; found in review).
func TestATunnelEndsWhenItsTenantGoesDuringTheHandshake(t *testing.T) {
	handshake, answer := make(chan struct{}), make(chan struct{})
	addr := testkit.Listen(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		close(handshake)
		<-answer
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n")
		io.Copy(c, br)
	})
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: "http://" + addr, limit: 1000}
	f.extra = []string{"{id: acme, plan: small, keys: [acme-key]}"}
	gw, _ := startReloadable(t, f)
	acme := dial(t, gw.proxy)
	acme.c.SetDeadline(time.Now().Add(30 * time.Second))
	acme.send(upgradeHead + "X-API-Key: acme-key\r\n\r\n")
	<-handshake
	f.extra = nil // acme removed while its upgrade is answered
	f.write(t)
	if resp := adminReload(t, gw); resp.StatusCode() != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode(), resp.Body())
	}
	close(answer)
	if status, _ := readHead(t, acme); status != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("got %q; want 101 (admitted before the removal)", status)
	}
	acme.c.SetReadDeadline(time.Now().Add(4 * time.Second))
	if _, err := io.ReadAll(acme.br); err != nil {
		t.Fatalf("the tunnel of a tenant removed during its handshake: %v; want it ended within 4 s", err)
	}
}

// TestATunnelEndsWhenItsKeyExpires: a tunnel opened with a retiring key
// ends once the key has expired, with no change to the config: from then
// on the key is refused, and its tunnel carries nothing either. Another
// tenant's tunnel goes on. The tunnel went on for up to
// tunnel_max_duration, since its watcher looked at its key only when the
// tenants changed.
func TestATunnelEndsWhenItsKeyExpires(t *testing.T) {
	e := startEchoUpgrade(t)
	expires := time.Now().Add(1500 * time.Millisecond)
	f := reloadFile{path: filepath.Join(t.TempDir(), "l1gw.yaml"), interval: "0s", upstream: "http://" + e.addr, limit: 1000}
	f.extra = []string{"{id: acme, plan: small, retiring_keys: [{key: acme-key, expires_at: \"" + expires.Format(time.RFC3339Nano) + "\"}]}"}
	gw, _ := startReloadable(t, f)
	acme := openTunnelAs(t, gw.proxy, "acme-key")
	other := openTunnelAs(t, gw.proxy, "bulk-key")
	acme.send("ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(acme.br, got); err != nil || string(got) != "ping" {
		t.Fatalf("the tunnel before its key expired: %q, %v; want its echo", got, err)
	}
	time.Sleep(time.Until(expires))
	if code := call(t, gw.proxy, "GET", "/x", "X-API-Key", "acme-key").StatusCode(); code != 401 {
		t.Fatalf("acme-key once expired: %d; want 401", code)
	}
	acme.c.SetReadDeadline(time.Now().Add(4 * time.Second))
	if _, err := io.ReadAll(acme.br); err != nil {
		t.Fatalf("the tunnel of an expired key: %v; want it ended (EOF) within 4 s of the expiry", err)
	}
	other.send("ping")
	if _, err := io.ReadFull(other.br, got); err != nil || string(got) != "ping" {
		t.Fatalf("another tenant's tunnel: %q, %v; want its echo", got, err)
	}
}

// tunnelRoutesConfig is a config file for TestATunnelEndsWithItsUpstream:
// upstream main at MAIN for every path, and SIDE (upstreams and routes
// entries, one a line) before it; tenant pinned has PINNED for its
// upstream.
const tunnelRoutesConfig = `
server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
  admin_token: tok
  shutdown_grace: 5s
  config_reload_interval: 0s
plans:
  huge:
    limits:
      - {name: per_second, limit: 1000000000, window: 1s}
tenant_list:
  - {id: bulk, plan: huge, keys: [bulk-key]}
  - {id: pinned, plan: huge, keys: [pinned-key], upstream: "PINNED"}
upstreams:
  main: {targets: ["MAIN"], timeout: 20s, health: {path: ""}}
SIDE_UPSTREAM
routes:
SIDE_ROUTE
  - {path_prefix: /, upstream: main}
`

// openTunnelAt opens a tunnel through addr to path under key, and fails
// on any answer but 101.
func openTunnelAt(t *testing.T, addr, key, path string) *conn {
	t.Helper()
	c := dial(t, addr)
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	c.send(strings.Replace(upgradeHead, "/ws", path, 1) + "X-API-Key: " + key + "\r\n\r\n")
	if status, _ := readHead(t, c); status != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("%s as %s: got %q; want 101", path, key, status)
	}
	return c
}

// TestATunnelEndsWithItsUpstream: a reload after which a tunnel's
// request would no longer go to the upstream it went to ends the
// tunnel: its upstream removed, with the route that sent it there, or
// with its tenant's upstream. A tunnel still sent where it went goes on,
// and so do all of them over a reload that changes the upstream's
// settings alone. Tunnels outlived their upstream's removal for up to
// tunnel_max_duration.
func TestATunnelEndsWithItsUpstream(t *testing.T) {
	mainUp, sideUp := startEchoUpgrade(t), startEchoUpgrade(t)
	path := filepath.Join(t.TempDir(), "l1gw.yaml")
	write := func(side, pinned string) {
		t.Helper()
		sideUpstream, sideRoute := "", ""
		if side != "" {
			sideUpstream = `  side: {targets: ["http://` + sideUp.addr + `"], timeout: ` + side + `, health: {path: ""}}`
			sideRoute = "  - {path_prefix: /side, upstream: side}"
		}
		body := strings.NewReplacer("MAIN", "http://"+mainUp.addr, "PINNED", pinned,
			"SIDE_UPSTREAM", sideUpstream, "SIDE_ROUTE", sideRoute).Replace(tunnelRoutesConfig)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("20s", "side")
	gw, _ := startReloading(t, path)
	routed := openTunnelAt(t, gw.proxy, "bulk-key", "/side/ws") // by its route to side
	pinned := openTunnelAt(t, gw.proxy, "pinned-key", "/ws")    // by its tenant's upstream, side
	other := openTunnelAt(t, gw.proxy, "bulk-key", "/ws")       // main
	// In the order opened: side's heads come in that order.
	for _, tc := range []struct{ name, want string }{{"routed", "/side/ws"}, {"pinned", "/ws"}, {"other", "/ws"}} {
		name, want := tc.name, tc.want
		up := sideUp
		if name == "other" {
			up = mainUp
		}
		if line, _, _ := strings.Cut(<-up.heads, "\r\n"); !strings.HasPrefix(line, "GET "+want+" ") {
			t.Fatalf("%s: the upstream got %q; want GET %s", name, line, want)
		}
	}
	echoes := func(step string, tunnels map[string]*conn) {
		t.Helper()
		for name, c := range tunnels {
			c.send("ping")
			got := make([]byte, 4)
			if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "ping" {
				t.Fatalf("%s: tunnel %s: %q, %v; want its echo", step, name, got, err)
			}
		}
	}
	reload := func(step string) {
		t.Helper()
		if resp := adminReload(t, gw); resp.StatusCode() != 200 {
			t.Fatalf("%s: reload: %d %s", step, resp.StatusCode(), resp.Body())
		}
	}
	all := map[string]*conn{"routed": routed, "pinned": pinned, "other": other}

	write("30s", "side") // side's settings alone change: a new pool, the same upstream
	reload("side's timeout changed")
	time.Sleep(2 * time.Second) // two of the watchers' ticks
	echoes("after side's timeout changed", all)

	write("", "") // side removed: its route, and pinned's upstream
	reload("side removed")
	if code := call(t, gw.proxy, "GET", "/side/x", "X-API-Key", "bulk-key").StatusCode(); code != 426 {
		t.Fatalf("/side after side's removal: %d; want main's 426", code)
	}
	for name, c := range map[string]*conn{"routed": routed, "pinned": pinned} {
		c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c.br); err != nil {
			t.Fatalf("tunnel %s, its upstream removed: %v; want it ended (EOF) within 5 s", name, err)
		}
	}
	echoes("after side's removal", map[string]*conn{"other": other})
}

// TestATunnelEndsWithItsTarget: of two tunnels on an upstream of two
// targets, one on each, a reload that removes one target from the
// upstream's targets ends the tunnel on it within a few seconds, and
// leaves the other open. The tunnel on a removed target went on for up to
// tunnel_max_duration.
func TestATunnelEndsWithItsTarget(t *testing.T) {
	mainUp, first, second := startEchoUpgrade(t), startEchoUpgrade(t), startEchoUpgrade(t)
	path := filepath.Join(t.TempDir(), "l1gw.yaml")
	write := func(targets ...*echoUpgrade) {
		t.Helper()
		urls := make([]string, len(targets))
		for i, u := range targets {
			urls[i] = `"http://` + u.addr + `"`
		}
		body := strings.NewReplacer("MAIN", "http://"+mainUp.addr, "PINNED", "",
			"SIDE_UPSTREAM", `  side: {targets: [`+strings.Join(urls, ", ")+`], timeout: 20s, health: {path: ""}}`,
			"SIDE_ROUTE", "  - {path_prefix: /side, upstream: side}").Replace(tunnelRoutesConfig)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(first, second)
	gw, _ := startReloading(t, path)
	// The pool takes its targets in turn: one tunnel on each. Which is
	// which, their paths tell.
	a := openTunnelAt(t, gw.proxy, "bulk-key", "/side/a")
	b := openTunnelAt(t, gw.proxy, "bulk-key", "/side/b")
	var onFirst, onSecond *conn
	for _, up := range []*echoUpgrade{first, second} {
		var head string
		select {
		case head = <-up.heads:
		case <-time.After(5 * time.Second):
			t.Fatal("a target got no tunnel within 5 s; want one on each")
		}
		line, _, _ := strings.Cut(head, "\r\n")
		c := a
		if strings.HasPrefix(line, "GET /side/b ") {
			c = b
		}
		if up == first {
			onFirst = c
		} else {
			onSecond = c
		}
	}
	if onFirst == onSecond {
		t.Fatal("both tunnels went to one target; want one on each")
	}
	write(first)
	if resp := adminReload(t, gw); resp.StatusCode() != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode(), resp.Body())
	}
	onSecond.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(onSecond.br); err != nil {
		t.Fatalf("the tunnel on the removed target: %v; want it ended (EOF) within 5 s", err)
	}
	time.Sleep(1500 * time.Millisecond) // the other's watcher has looked too
	onFirst.send("ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(onFirst.br, got); err != nil || string(got) != "ping" {
		t.Fatalf("the tunnel on the kept target: %q, %v; want its echo", got, err)
	}
}
