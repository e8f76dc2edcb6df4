package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
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

// attack sends rate requests per second for d and returns vegeta's metrics
// and up to harness.MaxErrors distinct transport errors (requests with no
// response). It stops early, with an error, when ctx ends; a timer stops
// it in any case once d and a request timeout are over.
func attack(ctx context.Context, name string, tr vegeta.Targeter, rate int, d time.Duration) (*vegeta.Metrics, []string, error) {
	a := harness.NewAttacker()
	defer context.AfterFunc(ctx, func() { a.Stop() })()
	hard := time.AfterFunc(d+2*harness.AttackTimeout, func() { a.Stop() })
	defer hard.Stop()

	m := &vegeta.Metrics{}
	seen := map[string]bool{}
	var errs []string
	for res := range a.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, name) {
		m.Add(res)
		if res.Code == 0 && res.Error != "" && !seen[res.Error] && len(errs) < harness.MaxErrors {
			seen[res.Error] = true
			errs = append(errs, res.Error)
		}
	}
	m.Close()
	if err := context.Cause(ctx); err != nil {
		return nil, nil, fmt.Errorf("attack %s stopped: %w", name, err)
	}
	return m, errs, nil
}
