package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// metricsTimeout bounds one scrape of the gateway's /metrics.
const metricsTimeout = 2 * time.Second

// scrapeMetrics reads the gateway's /metrics: every sample by its series
// (name and labels, as printed).
func scrapeMetrics(admin string) (map[string]float64, error) {
	client := &http.Client{Timeout: metricsTimeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format: "series value" lines;
// comments and blank lines are skipped.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// sumSeries adds the samples of metric name whose labels contain every
// one of labels (each written as key="value").
func sumSeries(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for series, v := range m {
		rest, ok := strings.CutPrefix(series, name)
		if !ok || (rest != "" && rest[0] != '{') {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(rest, l)
		}
		if match {
			sum += v
		}
	}
	return sum
}

// servedGoroutines is go_goroutines less the proxy's and the admin
// listener's open connections (fasthttp serves each with a goroutine),
// all three from one scrape. The client sockets counted in /proc a moment
// after the scrape are not the same moment's: under contention they once
// outnumbered the goroutines, and a steady gateway read 0.
func servedGoroutines(m map[string]float64) int {
	return int(sumSeries(m, "go_goroutines") - sumSeries(m, "l1gw_connections_open") - sumSeries(m, "l1gw_admin_connections_open"))
}

// degradedReasons is l1gw_degraded_decisions_total by reason, after minus
// before; reasons that did not move are left out.
func degradedReasons(before, after map[string]float64) map[string]int {
	out := map[string]int{}
	for _, reason := range []string{"error", "budget", "breaker", "shed", "evicting", "restarted", "unconfirmed", "recorder"} {
		l := `reason="` + reason + `"`
		if d := sumSeries(after, "l1gw_degraded_decisions_total", l) - sumSeries(before, "l1gw_degraded_decisions_total", l); d != 0 {
			out[reason] = int(d)
		}
	}
	return out
}

// Resources is the gateway process's footprint at steady state. Client
// connections (to the proxy and admin ports) come and go with the load
// generator's concurrency, so Goroutines and FDs leave them out: fasthttp
// serves each open connection with one goroutine. Redis and upstream
// connections are counted on their own: go-redis keeps a pool of up to
// pool_size per node, fasthttp one of the upstream connections recently
// needed.
type Resources struct {
	// Goroutines is go_goroutines less one per client connection, both as
	// the same scrape of the gateway's metrics has them (servedGoroutines).
	Goroutines int `json:"goroutines"`
	// FDs is the open file descriptors less the client, Redis and
	// upstream connections: files, pipes, listeners, other sockets.
	FDs int `json:"fds"`
	// ClientConns are the accepted connections open at the sample.
	ClientConns int `json:"client_conns"`
	// RedisConns are the gateway's connections to Redis nodes, sentinels
	// or the latency proxy.
	RedisConns int `json:"redis_conns"`
	// UpstreamConns are the gateway's connections to the upstream.
	UpstreamConns int `json:"upstream_conns"`
	// RSSKB is VmRSS.
	RSSKB int64 `json:"rss_kb"`
}

// peers are where the gateway's outgoing connections go.
type peers struct {
	redis    map[int]bool // ports of Redis nodes, sentinels or the latency proxy
	upstream int          // the upstream's port
}

// sockets are a process's TCP sockets by kind.
type sockets struct{ client, redis, upstream int }

// countSockets classifies pid's TCP sockets: those accepted on one of
// serverPorts, and those connected to a Redis port or to the upstream.
// It matches the socket inodes of /proc/<pid>/fd with /proc/<pid>/net/tcp.
func countSockets(pid int, serverPorts map[int]bool, to peers) (sockets, int, error) {
	var s sockets
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return s, 0, fmt.Errorf("list fds: %w", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if ino, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	table, err := os.ReadFile(filepath.Join(dir, "net", "tcp"))
	if err != nil {
		return s, 0, fmt.Errorf("read tcp table: %w", err)
	}
	return classify(parseTCPTable(table), inodes, serverPorts, to), len(fds), nil
}

// classify counts the rows whose inode is one of the process's, each
// inode once (it deletes the inodes it counts from inodes): the kernel walks its socket hash in chunks as sockets come
// and go, so a busy table can list a socket twice (which made FDs
// negative in a run).
func classify(rows []tcpRow, inodes map[string]bool, serverPorts map[int]bool, to peers) sockets {
	var s sockets
	for _, row := range rows {
		if !inodes[row.inode] || row.state == tcpListen {
			continue
		}
		delete(inodes, row.inode)
		switch {
		case serverPorts[row.localPort]:
			s.client++
		case to.redis[row.remotePort]:
			s.redis++
		case row.remotePort == to.upstream:
			s.upstream++
		}
	}
	return s
}

// tcpListen is the LISTEN state in /proc/net/tcp.
const tcpListen = "0A"

type tcpRow struct {
	localPort, remotePort int
	state, inode          string
}

// parseTCPTable reads /proc/net/tcp: "sl local rem st queues tr retrnsmt
// uid timeout inode …", addresses as hex IP:port. Malformed rows are
// skipped.
func parseTCPTable(b []byte) []tcpRow {
	var rows []tcpRow
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		lp, err1 := hexPort(f[1])
		rp, err2 := hexPort(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		rows = append(rows, tcpRow{localPort: lp, remotePort: rp, state: f[3], inode: f[9]})
	}
	return rows
}

func hexPort(addr string) (int, error) {
	_, p, ok := strings.Cut(addr, ":")
	if !ok {
		return 0, fmt.Errorf("address %q has no port", addr)
	}
	n, err := strconv.ParseUint(p, 16, 16)
	return int(n), err
}

// portOf is addr's port; 0 when addr has none.
func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	n, _ := strconv.Atoi(addr[i+1:])
	return n
}

// sampleResources takes n samples of the gateway 100ms apart and keeps
// each field's smallest value: the floor at steady load, which a leak
// raises and a momentary burst does not.
func sampleResources(gw *harness.Gateway, to peers, n int) (*Resources, error) {
	server := map[int]bool{portOf(gw.Proxy): true, portOf(gw.Admin): true}
	var best *Resources
	for i := range n {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		m, err := scrapeMetrics(gw.Admin)
		if err != nil {
			return nil, err
		}
		socks, nfd, err := countSockets(gw.Pid(), server, to)
		if err != nil {
			return nil, err
		}
		proc, err := harness.SampleProc(gw.Pid())
		if err != nil {
			return nil, err
		}
		r := Resources{
			Goroutines:  servedGoroutines(m),
			FDs:         nfd - socks.client - socks.redis - socks.upstream,
			ClientConns: socks.client, RedisConns: socks.redis, UpstreamConns: socks.upstream, RSSKB: proc.RSSKB,
		}
		if best == nil {
			best = &r
			continue
		}
		best.Goroutines, best.FDs = min(best.Goroutines, r.Goroutines), min(best.FDs, r.FDs)
		best.ClientConns, best.RedisConns = min(best.ClientConns, r.ClientConns), min(best.RedisConns, r.RedisConns)
		best.UpstreamConns = min(best.UpstreamConns, r.UpstreamConns)
		best.RSSKB = min(best.RSSKB, r.RSSKB)
	}
	return best, nil
}
