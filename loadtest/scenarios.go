package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
	"github.com/l1gw/l1gw/loadtest/internal/timeline"
)

// manyTenants is the tenant count of the many-tenants scenario.
const manyTenants = 1000

// scenario is one load pattern.
type scenario struct {
	name    string
	gateway bool  // through the gateway; false attacks the upstream directly
	tenants int   // tenants configured and cycled over: keys key-0 … key-(n-1)
	limit   int64 // each tenant's limit per 1 s window
	exact   bool  // check admitted ≈ limit × duration
	// held: the scenario holds connections without a key that each
	// declare a 10 MiB body and send none of it (-held of them).
	held int
	// pressure: idle (-idle) and slowloris (-slowloris) connections are
	// held open through the attack.
	pressure bool
	// upload: no attack; one 1 GiB body through the gateway.
	upload bool
	// download: no attack; one 1 GiB response through the gateway.
	download bool
	// reloads: the config is rewritten and reloaded reloadCount times
	// during the attack.
	reloads bool
}

// scenarioNames lists the scenarios in run order.
func scenarioNames() []string {
	return []string{"baseline", "admitted", "limited", "many-tenants", "held-bodies", "upload", "download", "idle-slowloris", "reload"}
}

// findScenario is the named scenario at rate requests per second.
func findScenario(name string, rate int) (scenario, bool) {
	r := int64(rate)
	perTenant := int64(math.Ceil(float64(rate) / manyTenants))
	switch name {
	case "baseline":
		return scenario{name: name}, true
	case "admitted":
		// Far above the rate: every request is admitted and forwarded.
		return scenario{name: name, gateway: true, tenants: 1, limit: 100 * r}, true
	case "limited":
		// A fifth of the rate: four requests in five are denied.
		return scenario{name: name, gateway: true, tenants: 1, limit: max(1, r/5), exact: true}, true
	case "many-tenants":
		// Twice each tenant's share of the round robin: all should fit.
		return scenario{name: name, gateway: true, tenants: manyTenants, limit: 2 * perTenant}, true
	case "held-bodies":
		// admitted, beside connections that declare bodies they never send.
		return scenario{name: name, gateway: true, tenants: 1, limit: 100 * r, held: 1}, true
	case "upload":
		return scenario{name: name, gateway: true, tenants: 1, limit: 100 * r, upload: true}, true
	case "download":
		return scenario{name: name, gateway: true, tenants: 1, limit: 100 * r, download: true}, true
	case "idle-slowloris":
		// admitted, beside idle and slowloris connections.
		return scenario{name: name, gateway: true, tenants: 1, limit: 100 * r, pressure: true}, true
	case "reload":
		// admitted, while the config is reloaded again and again.
		return scenario{name: name, gateway: true, tenants: 1, limit: 100 * r, reloads: true}, true
	}
	return scenario{}, false
}

// runScenario runs one scenario: for a gateway scenario it writes the
// config, starts the gateway, samples it around the attack and stops it.
func runScenario(ctx context.Context, sc scenario, o options, upstreamAddr string) (Result, error) {
	if !sc.gateway {
		url, err := loopbackURL(upstreamAddr)
		if err != nil {
			return Result{}, err
		}
		a, err := attack(ctx, sc.name, keyTargeter(url, 0), o.rate, o.duration)
		if err != nil {
			return Result{}, err
		}
		res := newResult(sc, o, "upstream", a.m, a.errs)
		res.Timeline = &a.tl
		return res, nil
	}
	dir, err := os.MkdirTemp("", "l1gw-load-")
	if err != nil {
		return Result{}, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg, err := writeConfig(dir, sc, upstreamAddr)
	if err != nil {
		return Result{}, err
	}
	gw, err := harness.StartGateway(ctx, o.bin, cfg)
	if err != nil {
		return Result{}, err
	}
	var res Result
	switch {
	case sc.upload:
		res = Result{Scenario: sc.name, Via: "gateway"}
		res.Upload, err = upload(ctx, gw)
	case sc.download:
		res = Result{Scenario: sc.name, Via: "gateway"}
		res.Upload, err = download(ctx, gw)
	default:
		var rl *reloader
		if sc.reloads {
			rl = &reloader{path: cfg, upstream: upstreamAddr, sc: sc, gw: gw}
		}
		res, err = attackGateway(ctx, sc, o, gw, rl)
	}
	if stopErr := gw.Stop(); stopErr != nil {
		if err == nil && ctx.Err() == nil {
			// The measurements stand; the failed stop is a finding.
			res.Notes = append(res.Notes, "gateway stop: "+stopErr.Error())
		} else {
			err = errors.Join(err, stopErr)
		}
	}
	return res, err
}

// attackGateway attacks a running gateway and samples its process around
// the attack (around each attack of idle-slowloris's rounds).
// rl, if not nil, reloads the gateway's config during the attack.
func attackGateway(ctx context.Context, sc scenario, o options, gw *harness.Gateway, rl *reloader) (Result, error) {
	url, err := loopbackURL(gw.Proxy)
	if err != nil {
		return Result{}, err
	}
	before, err := harness.SampleProc(gw.Pid())
	if err != nil {
		return Result{}, err
	}
	if sc.held > 0 {
		sc.held = o.held
	}
	held, err := holdBodies(gw.Proxy, sc.held)
	if err != nil {
		return Result{}, err
	}
	defer closeAll(held)
	var heldRes *Held
	if sc.held > 0 {
		// The gateway closes them at server.read_timeout (5 s): measure
		// while it holds them all.
		time.Sleep(time.Second)
		s, err := harness.SampleProc(gw.Pid())
		if err != nil {
			return Result{}, err
		}
		heldRes = &Held{Conns: sc.held, Open: stillOpen(held), RSSGrowthKB: s.RSSKB - before.RSSKB}
	}
	tr := keyTargeter(url, sc.tenants)
	var m *vegeta.Metrics
	var errs []string
	var ticks int64
	var pressed *Pressure
	var reloads *Reloads
	var tl *timeline.Timeline // nil for idle-slowloris' rounds
	if sc.pressure {
		run, err := pressureRounds(ctx, sc, o, gw, tr, before)
		if err != nil {
			return Result{}, err
		}
		m, errs, ticks, pressed = run.pressed, run.errs, run.pressedTicks, run.info
	} else {
		one := func() error {
			ticks, m, err = sampled(gw, func() (*vegeta.Metrics, error) {
				a, err := attack(ctx, sc.name, tr, o.rate, o.duration)
				errs, tl = a.errs, &a.tl
				return a.m, err
			})
			return err
		}
		if rl != nil {
			reloads, err = rl.during(ctx, o.duration, one)
		} else {
			err = one()
		}
		if err != nil {
			return Result{}, err
		}
	}
	after, err := harness.SampleProc(gw.Pid())
	if err != nil {
		return Result{}, err
	}
	res := newResult(sc, o, "gateway", m, errs)
	res.Timeline = tl
	res.Gateway = newUsage(before, after, ticks, m.Requests)
	res.Gateway.Held, res.Gateway.Pressure = heldRes, pressed
	res.Gateway.WarnLines, res.Gateway.WarnMsgs = gw.Logs.Warnings()
	if sc.exact {
		res.Limit = newLimitCheck(sc, o.duration, m.StatusCodes)
	}
	res.Notes = append(res.Notes, checkCodes(sc, m.StatusCodes)...)
	if reloads != nil {
		res.Reloads = reloads
		res.Notes = append(res.Notes, reloadNote(reloads)...)
	}
	return res, nil
}

// checkCodes notes status codes a scenario should not see: anything but
// 200 (and 429 in limited); 429 in many-tenants, whose limits fit.
func checkCodes(sc scenario, codes map[string]int) []string {
	var notes []string
	for code, n := range codes {
		switch {
		case code == "200":
		case code == "429" && sc.exact:
		default:
			notes = append(notes, fmt.Sprintf("%d responses with status %s (want none)", n, code))
		}
	}
	slices.Sort(notes)
	return notes
}
