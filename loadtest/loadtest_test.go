package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// TestMain lets the test binary be the pressure child of idle-slowloris,
// as the command's own binary is.
func TestMain(m *testing.M) {
	if spec := os.Getenv(pressureEnv); spec != "" {
		os.Exit(pressureChild(spec))
	}
	os.Exit(m.Run())
}

// buildGateway builds cmd/l1gw into a temporary directory.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin, err := harness.BuildGateway(t.Context(), t.TempDir(), "..")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestGateway runs the real gateway binary: every scenario's config passes
// `l1gw check-config`, and a one-second limited scenario admits the limit.
func TestGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	bin := buildGateway(t)

	t.Run("configs", func(t *testing.T) {
		for _, name := range scenarioNames() {
			sc, _ := findScenario(name, 1000)
			if !sc.gateway {
				continue
			}
			t.Run(name, func(t *testing.T) {
				path, err := writeConfig(t.TempDir(), sc, "127.0.0.1:1")
				if err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(bin, "check-config", "--config", path).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "config ok") {
					t.Fatalf("l1gw check-config: %v\n%s", err, out)
				}
			})
		}
	})

	t.Run("limited", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o := options{rate: 200, duration: time.Second, scenarios: []string{"limited"}, bin: bin}
		rep, err := runAll(ctx, o, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Results) != 1 || rep.Results[0].Limit == nil {
			t.Fatalf("got results %+v; want one limited result with a limit check", rep.Results)
		}
		res := rep.Results[0]
		c := res.Limit
		t.Logf("codes %v; expected %d admitted, got %d (%+.1f%%)", res.StatusCodes, c.Expected, c.Admitted, 100*c.RelErr)
		if c.Expected != 40 {
			t.Errorf("got expected %d; want 40 (a fifth of 200/s, for 1 s)", c.Expected)
		}
		if c.Denied == 0 {
			t.Errorf("got no 429s; want the requests past the limit denied")
		}
		if c.RelErr < -0.2 || c.RelErr > 0.2 {
			t.Errorf("got %d admitted; want %d ± 20%%", c.Admitted, c.Expected)
		}
		if len(res.Notes) > 0 || len(res.Errors) > 0 {
			t.Errorf("got notes %q, errors %q; want none", res.Notes, res.Errors)
		}
		checkTimeline(t, res)
	})

	// 200 connections declaring 10 MiB each: before the body was streamed
	// they took the gateway to gigabytes.
	t.Run("held-bodies", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o := options{rate: 100, duration: time.Second, scenarios: []string{"held-bodies"}, bin: bin, held: 200}
		rep, err := runAll(ctx, o, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		res := rep.Results[0]
		h := res.Gateway.held()
		if h == nil || h.Conns != 200 {
			t.Fatalf("got held %+v; want 200 held connections measured", h)
		}
		t.Logf("held %d (%d open): RSS %+d KB; codes %v", h.Conns, h.Open, h.RSSGrowthKB, res.StatusCodes)
		if h.Open != 200 {
			t.Errorf("%d of 200 held connections open when measured; want all (the gateway waits for their bodies)", h.Open)
		}
		if h.RSSGrowthKB > 50<<10 {
			t.Errorf("gateway RSS grew %d KB with 200 connections declaring 10 MiB bodies; want under 50 MB", h.RSSGrowthKB)
		}
		if len(res.Notes) > 0 {
			t.Errorf("got notes %q; want every request beside them admitted", res.Notes)
		}
	})

	// Ten reloads, one of a file that does not load, during a short attack:
	// every request answered 200, every reload answered as it should.
	t.Run("reload", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		o := options{rate: 200, duration: 2 * time.Second, scenarios: []string{"reload"}, bin: bin}
		rep, err := runAll(ctx, o, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		res := rep.Results[0]
		if res.Reloads == nil || res.Reloads.Done != reloadCount {
			t.Fatalf("got reloads %+v; want %d", res.Reloads, reloadCount)
		}
		t.Logf("codes %v, reloads %v", res.StatusCodes, res.Reloads.Codes)
		if len(res.Notes) > 0 || len(res.Errors) > 0 {
			t.Errorf("got notes %q, errors %q; want every request 200 and every reload 200 but the invalid file's 400", res.Notes, res.Errors)
		}
	})

	// Two short rounds: each pairs an attack alone with one beside held
	// connections, which all stay open through it.
	t.Run("idle-slowloris", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		o := options{rate: 100, duration: time.Second, scenarios: []string{"idle-slowloris"}, bin: bin, idle: 300, slowloris: 20, rounds: 2}
		rep, err := runAll(ctx, o, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		res := rep.Results[0]
		pr := res.Gateway.Pressure
		if pr == nil || len(pr.Rounds) != 2 {
			t.Fatalf("got pressure %+v; want two rounds", pr)
		}
		t.Logf("P99 alone %.3f ms, beside %.3f ms; held %+v", pr.Alone.P99, res.LatencyMs.P99, *pr)
		if res.Requests < 150 || res.Requests > 250 {
			t.Errorf("got %d requests beside the held connections; want about 200 (two attacks of 100)", res.Requests)
		}
		if res.RateAchieved < 50 {
			t.Errorf("got a rate of %.1f/s; want about 100 (the pauses between attacks are not attack time)", res.RateAchieved)
		}
		for i, r := range pr.Rounds {
			if r.Alone.P50 <= 0 || r.Pressed.P50 <= 0 {
				t.Errorf("round %d: got %+v; want both attacks measured", i+1, r)
			}
		}
		if pr.OpenAtStart != 320 || pr.OpenAtEnd != 320 || pr.Ended != 0 {
			t.Errorf("got %d open at the start, %d at the end, %d ended; want all 320 held throughout", pr.OpenAtStart, pr.OpenAtEnd, pr.Ended)
		}
		if len(res.Notes) > 0 || len(res.Errors) > 0 {
			t.Errorf("got notes %q, errors %q; want every request admitted", res.Notes, res.Errors)
		}
	})
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string // scenarios, comma-separated
		wantErr bool
	}{
		{"defaults", nil, "baseline,admitted,limited,many-tenants,held-bodies,upload,download,idle-slowloris,reload", false},
		{"no held connections", []string{"-held", "0"}, "", true},
		{"run order", []string{"-scenario", "limited,baseline"}, "baseline,limited", false},
		{"unknown scenario", []string{"-scenario", "nope"}, "", true},
		{"duration over the cap", []string{"-duration", "121s"}, "", true},
		{"zero rate", []string{"-rate", "0"}, "", true},
		{"stray argument", []string{"extra"}, "", true},
		{"no rounds", []string{"-rounds", "0"}, "", true},
		{"rounds over the cap", []string{"-rounds", "11"}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v; want error %v", err, tc.wantErr)
			}
			if got := strings.Join(o.scenarios, ","); !tc.wantErr && got != tc.want {
				t.Errorf("got scenarios %q; want %q", got, tc.want)
			}
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"localhost:80", "10.0.0.1:80", "[::1]:80", "example.com:80"} {
		if _, err := loopbackURL(addr); err == nil {
			t.Errorf("loopbackURL(%q): got no error; want a refusal", addr)
		}
	}
	if got, err := loopbackURL("127.0.0.1:8080"); err != nil || got != "http://127.0.0.1:8080/load" {
		t.Errorf("got %q, %v; want http://127.0.0.1:8080/load", got, err)
	}
}

// checkTimeline checks a limited run's timeline: every request in a
// second, the 429s among them, and in results.html.
func checkTimeline(t *testing.T, res Result) {
	t.Helper()
	tl := res.Timeline
	if tl == nil || len(tl.Seconds) == 0 {
		t.Fatalf("got timeline %+v; want the attack per second", tl)
	}
	n, denied := 0, 0
	for _, s := range tl.Seconds {
		n += s.Requests
		denied += s.Codes["429"]
	}
	if uint64(n) != res.Requests || denied != res.Limit.Denied {
		t.Errorf("timeline: got %d requests, %d denied; want %d, %d", n, denied, res.Requests, res.Limit.Denied)
	}
	dir := t.TempDir()
	if err := (&Report{Results: []Result{res}}).Write(dir, ""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `data-series="429"`) {
		t.Errorf("results.html plots no 429 series")
	}
}
