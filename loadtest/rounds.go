package main

import (
	"context"
	"fmt"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// Round is one round of idle-slowloris: the same attack alone, then beside
// the held connections, on the same gateway.
type Round struct {
	Alone   harness.Latency `json:"alone_ms"`
	Pressed harness.Latency `json:"pressed_ms"`
}

// pressureRun is what the rounds of idle-slowloris measured.
type pressureRun struct {
	pressed      *vegeta.Metrics // every attack beside the held connections
	errs         []string
	pressedTicks int64 // gateway CPU over those attacks
	info         *Pressure
}

// pressureRounds runs o.rounds rounds against gw. Each round attacks it
// alone, opens the idle and slowloris connections, attacks it again beside
// them, and closes them. Alternating the two on one gateway puts them under
// the same noise from the machine, which on a shared VM moves a P99 more
// than the held connections do; the comparison is of the two sets of
// attacks, and of each round's pair.
func pressureRounds(ctx context.Context, sc scenario, o options, gw *harness.Gateway, tr vegeta.Targeter, before harness.ProcSample) (*pressureRun, error) {
	var alone, pressed collector
	info := &Pressure{Idle: o.idle, Slowloris: o.slowloris, OpenAtStart: o.idle + o.slowloris, OpenAtEnd: o.idle + o.slowloris}
	var aloneTicks, pressedTicks int64
	for r := range o.rounds {
		// Lets the gateway finish closing the last round's connections.
		time.Sleep(time.Second)
		ticks, a, err := sampled(gw, func() (*vegeta.Metrics, error) {
			return alone.attack(ctx, sc.name+"-alone", tr, o.rate, o.duration)
		})
		if err != nil {
			return nil, fmt.Errorf("round %d alone: %w", r+1, err)
		}
		aloneTicks += ticks
		round := Round{Alone: latency(a)}
		err = withPressure(gw, o, before, info, func() error {
			ticks, p, err := sampled(gw, func() (*vegeta.Metrics, error) {
				return pressed.attack(ctx, sc.name, tr, o.rate, o.duration)
			})
			pressedTicks += ticks
			if err == nil {
				round.Pressed = latency(p)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("round %d beside held connections: %w", r+1, err)
		}
		info.Rounds = append(info.Rounds, round)
	}
	am := alone.close()
	info.Alone = latency(am)
	info.AloneCPUMsPer1k = perThousand(aloneTicks, am.Requests)
	return &pressureRun{pressed: pressed.close(), errs: pressed.errs, pressedTicks: pressedTicks, info: info}, nil
}

// withPressure opens the held connections, runs f once they are all open
// and settled, and closes them, noting in info what they were and cost.
func withPressure(gw *harness.Gateway, o options, before harness.ProcSample, info *Pressure, f func() error) error {
	press, err := startPressureProc(gw.Proxy, o.idle, o.slowloris)
	if err != nil {
		return err
	}
	defer press.halt()
	// All open before the attack: opening 10 000 at once overflows the
	// listen backlog, and the attack's own connections would wait behind
	// them for SYN retransmits.
	want := int64(o.idle + o.slowloris)
	for wait := time.Now().Add(30 * time.Second); press.open.Load() < want && time.Now().Before(wait); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // settled
	s, err := harness.SampleProc(gw.Pid())
	if err != nil {
		return err
	}
	info.RSSGrowthKB = max(info.RSSGrowthKB, s.RSSKB-before.RSSKB)
	info.OpenAtStart = min(info.OpenAtStart, int(press.open.Load()))
	if err := f(); err != nil {
		return err
	}
	info.OpenAtEnd = min(info.OpenAtEnd, int(press.open.Load()))
	info.Ended += press.ends.Load()
	info.DialFailures += press.dialFailures.Load()
	return nil
}

// sampled runs an attack and returns the gateway's CPU ticks over it.
func sampled(gw *harness.Gateway, f func() (*vegeta.Metrics, error)) (int64, *vegeta.Metrics, error) {
	s0, err := harness.SampleProc(gw.Pid())
	if err != nil {
		return 0, nil, err
	}
	m, err := f()
	if err != nil {
		return 0, nil, err
	}
	s1, err := harness.SampleProc(gw.Pid())
	if err != nil {
		return 0, nil, err
	}
	return s1.CPUTicks - s0.CPUTicks, m, nil
}

// latency is m's latency distribution in milliseconds.
func latency(m *vegeta.Metrics) harness.Latency {
	return harness.Latency{
		P50: harness.Ms(m.Latencies.P50), P90: harness.Ms(m.Latencies.P90),
		P99: harness.Ms(m.Latencies.P99), Max: harness.Ms(m.Latencies.Max),
	}
}

// perThousand is CPU milliseconds per 1000 requests from clock ticks.
func perThousand(ticks int64, requests uint64) float64 {
	if requests == 0 {
		return 0
	}
	return float64(ticks*1000/harness.UserHZ) * 1000 / float64(requests)
}
