package degrade_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// failing is a store that cannot decide.
type failing struct{}

func (failing) Decide(context.Context, limiter.Request) (limiter.Decision, error) {
	return limiter.Decision{}, errors.New("redis: connection refused")
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestFailModes(t *testing.T) {
	req := limiter.Request{Tenant: "t", Rules: []limiter.Rule{{Name: "r", Limit: 1, Window: time.Second}}}
	cases := []struct {
		mode                       string
		allowed, degraded, refused bool
	}{
		{degrade.FailOpen, true, true, false},
		{degrade.FailClosed, false, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			g, err := degrade.New(failing{}, degrade.Settings{FailMode: tc.mode}, quiet)
			if err != nil {
				t.Fatal(err)
			}
			v := g.Decide(context.Background(), req)
			if v.Allowed != tc.allowed || v.Degraded != tc.degraded || v.Refused != tc.refused {
				t.Fatalf("got allowed=%v degraded=%v refused=%v; want %v %v %v", v.Allowed, v.Degraded, v.Refused, tc.allowed, tc.degraded, tc.refused)
			}
		})
	}
}

func TestHealthyStoreIsNotDegraded(t *testing.T) {
	g, _ := degrade.New(limiter.NewMemoryStore(nil), degrade.Settings{FailMode: degrade.FailOpen}, quiet)
	req := limiter.Request{Tenant: "t", Rules: []limiter.Rule{{Name: "r", Limit: 1, Window: time.Minute}}}
	if v := g.Decide(context.Background(), req); !v.Allowed || v.Degraded || v.N != 1 {
		t.Fatalf("1st: got %+v; want allowed, not degraded", v)
	}
	if v := g.Decide(context.Background(), req); v.Allowed || v.Degraded {
		t.Fatalf("2nd: got allowed=%v degraded=%v; want denied, not degraded", v.Allowed, v.Degraded)
	}
}

func TestUnsupportedFailMode(t *testing.T) {
	if _, err := degrade.New(failing{}, degrade.Settings{FailMode: "sideways"}, quiet); err == nil {
		t.Fatal("New with fail mode sideways: no error")
	}
}
