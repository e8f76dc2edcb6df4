package harness

import (
	"net"
	"net/http"
	"net/url"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Bounds on one attack.
const (
	// AttackTimeout bounds each request of an attack.
	AttackTimeout = 5 * time.Second
	maxWorkers    = 1024 // concurrent requests in flight
	maxBody       = 4096 // response bytes kept per result
	// MaxErrors bounds the distinct transport errors a runner reports.
	MaxErrors = 5
	// MaxRate bounds every runner's -rate: each run stops itself.
	MaxRate = 50000
)

// UpstreamBody is what the runners' in-process upstream answers.
const UpstreamBody = "hello from the l1gw load-test upstream\n"

// NewAttacker is a vegeta attacker from 127.0.0.1, without a proxy or
// redirects, with keep-alive, the per-request timeout and the bounds above.
func NewAttacker() *vegeta.Attacker {
	return vegeta.NewAttacker(
		vegeta.Proxy(func(*http.Request) (*url.URL, error) { return nil, nil }),
		vegeta.LocalAddr(net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}),
		vegeta.Timeout(AttackTimeout),
		vegeta.KeepAlive(true),
		vegeta.MaxWorkers(maxWorkers),
		vegeta.Redirects(vegeta.NoFollow),
		vegeta.MaxBody(maxBody),
	)
}
