package main

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// The chaos load: two tenants behind one gateway. Two requests in three
// go to bulk, whose limit is far above the rate, so it measures the
// request path; one in three goes to limited, held at a known limit, so it
// measures over-admission.
const (
	bulkTenant    = "bulk"
	limitedTenant = "limited"
	bulkPath      = "/bulk"
	limitedPath   = "/limited"
	bulkLimit     = 100000 // per 1 s: never reached
	chaosWindow   = time.Second
	chaosRule     = "per_second"
	// maxChaosAttack ends an attack nobody stopped.
	maxChaosAttack = 20 * time.Minute
)

// chaosKey is the API key of a chaos tenant.
func chaosKey(tenant string) string { return "key-" + tenant }

// rlState is what a response said about its rate-limit decision.
type rlState uint8

const (
	stateOK       rlState = iota // X-RateLimit-Status: ok
	stateDegraded                // X-RateLimit-Status: degraded
	stateMissing                 // a response without the header (or another value)
	stateNoReply                 // no response: a transport error
)

// sample is one request of a chaos attack.
type sample struct {
	at      time.Time // sent
	latency time.Duration
	code    uint16
	state   rlState
	limited bool // sent as the limited tenant
}

// chaosTargeter alternates bulk, bulk, limited against the gateway at base
// (http://127.0.0.1:port).
func chaosTargeter(base string) vegeta.Targeter {
	bulk := http.Header{"X-Api-Key": []string{chaosKey(bulkTenant)}}
	limited := http.Header{"X-Api-Key": []string{chaosKey(limitedTenant)}}
	var next atomic.Uint64
	return func(t *vegeta.Target) error {
		if t == nil {
			return vegeta.ErrNilTarget
		}
		if (next.Add(1)-1)%3 == 2 {
			*t = vegeta.Target{Method: http.MethodGet, URL: base + limitedPath, Header: limited}
		} else {
			*t = vegeta.Target{Method: http.MethodGet, URL: base + bulkPath, Header: bulk}
		}
		return nil
	}
}

// chaosAttack is a constant-rate attack running until stop, recording
// every result and keeping, live, when the last ok and the last not-ok
// response were sent.
type chaosAttack struct {
	attacker *vegeta.Attacker
	done     chan struct{}

	mu      sync.Mutex
	samples []sample
	errs    map[string]int // transport errors by message (at most harness.MaxErrors kinds)
	lastOK  time.Time
	lastBad time.Time
}

// startChaosAttack attacks base at rate requests per second.
func startChaosAttack(base string, rate int) *chaosAttack {
	a := &chaosAttack{attacker: harness.NewAttacker(), done: make(chan struct{}), errs: map[string]int{}}
	results := a.attacker.Attack(chaosTargeter(base), vegeta.Rate{Freq: rate, Per: time.Second}, maxChaosAttack, "chaos")
	go func() {
		defer close(a.done)
		for res := range results {
			a.add(res)
		}
	}()
	return a
}

func (a *chaosAttack) add(res *vegeta.Result) {
	s := sample{at: res.Timestamp, latency: res.Latency, code: res.Code, limited: strings.HasSuffix(res.URL, limitedPath)}
	switch st := res.Headers.Get("X-Ratelimit-Status"); {
	case res.Code == 0:
		s.state = stateNoReply
	case st == "ok":
		s.state = stateOK
	case st == "degraded":
		s.state = stateDegraded
	default:
		s.state = stateMissing
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.samples = append(a.samples, s)
	if s.state == stateNoReply {
		if _, ok := a.errs[res.Error]; ok || len(a.errs) < harness.MaxErrors {
			a.errs[res.Error]++
		}
	}
	if s.state == stateOK {
		a.lastOK = later(a.lastOK, s.at)
	} else {
		a.lastBad = later(a.lastBad, s.at)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// steady reports whether, since t, responses have been ok for at least
// quiet: an ok sent after t, and at least quiet after the last not-ok.
func (a *chaosAttack) steady(t time.Time, quiet time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.lastOK.Before(t) && a.lastOK.Sub(a.lastBad) >= quiet
}

// stop ends the attack, waits for the requests in flight and returns every
// sample and the transport errors.
func (a *chaosAttack) stop() ([]sample, map[string]int) {
	a.attacker.Stop()
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.samples, a.errs
}
