package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
	"github.com/l1gw/l1gw/loadtest/internal/timeline"
)

// attackPath is the path every request of an attack asks for.
const attackPath = "/load"

// loopbackURL is the attack URL on addr, which must be 127.0.0.1:port.
func loopbackURL(addr string) (string, error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return "", err
	}
	return "http://" + addr + attackPath, nil
}

// keyTargeter is GET target, its X-API-Key cycling round-robin over
// key-0 … key-(keys-1); no key header when keys is 0.
func keyTargeter(target string, keys int) vegeta.Targeter {
	headers := make([]http.Header, max(keys, 1))
	for i := range keys {
		headers[i] = http.Header{"X-Api-Key": []string{tenantKey(i)}}
	}
	var next atomic.Uint64
	return func(t *vegeta.Target) error {
		if t == nil {
			return vegeta.ErrNilTarget
		}
		i := (next.Add(1) - 1) % uint64(len(headers))
		// Target.Request copies the header, so sharing it is safe.
		*t = vegeta.Target{Method: http.MethodGet, URL: target, Header: headers[i]}
		return nil
	}
}

// attacked is what one attack measured.
type attacked struct {
	m    *vegeta.Metrics
	errs []string // up to harness.MaxErrors distinct transport errors
	tl   timeline.Timeline
}

// attack sends rate requests per second for d and returns vegeta's metrics,
// up to harness.MaxErrors distinct transport errors (requests with no
// response) and the attack per second. It stops early, with an error, when
// ctx ends; a timer stops it in any case once d and a request timeout are
// over.
func attack(ctx context.Context, name string, tr vegeta.Targeter, rate int, d time.Duration) (attacked, error) {
	c := collector{tl: timeline.NewBuilder(time.Time{})} // from the first result
	if _, err := c.attack(ctx, name, tr, rate, d); err != nil {
		return attacked{}, err
	}
	return attacked{m: c.close(), errs: c.errs, tl: c.tl.Timeline(name)}, nil
}

// collector gathers the results of one or more attacks into one set of
// metrics, and, with tl, per second.
type collector struct {
	m    vegeta.Metrics
	span time.Duration // between each attack's first and last send, summed
	n    int           // attacks
	seen map[string]bool
	errs []string
	tl   *timeline.Builder // nil: no timeline
}

// attack runs one attack as the package's attack does, adds its results,
// and returns the metrics of this attack alone.
func (c *collector) attack(ctx context.Context, name string, tr vegeta.Targeter, rate int, d time.Duration) (*vegeta.Metrics, error) {
	a := harness.NewAttacker()
	defer context.AfterFunc(ctx, func() { a.Stop() })()
	hard := time.AfterFunc(d+2*harness.AttackTimeout, func() { a.Stop() })
	defer hard.Stop()

	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	one := &vegeta.Metrics{}
	for res := range a.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, name) {
		one.Add(res)
		c.m.Add(res)
		if c.tl != nil {
			c.tl.Add(res.Timestamp, res.Latency, int(res.Code), res.Headers.Get("X-Ratelimit-Status") == "degraded")
		}
		if res.Code == 0 && res.Error != "" && !c.seen[res.Error] && len(c.errs) < harness.MaxErrors {
			c.seen[res.Error] = true
			c.errs = append(c.errs, res.Error)
		}
	}
	one.Close()
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("attack %s stopped: %w", name, err)
	}
	c.span += one.Latest.Sub(one.Earliest)
	c.n++
	return one, nil
}

// close computes the metrics of every attack together. Over several
// attacks the rate is requests over the attacks' own time, not over the
// pauses between them.
func (c *collector) close() *vegeta.Metrics {
	c.m.Close()
	if c.n > 1 && c.span > 0 {
		c.m.Rate = float64(c.m.Requests) / c.span.Seconds()
	}
	return &c.m
}
