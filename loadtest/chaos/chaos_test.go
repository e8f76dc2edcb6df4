//go:build chaos

package main

import (
	"flag"
	"fmt"
	"testing"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// TestChaos's flags: go test -tags chaos ./chaos -args -chaos.full (in loadtest/).
var (
	chaosFull = flag.Bool("chaos.full", false, "chaos suite at full length (as make chaos runs it): 5 s phases and stall, 30 s outage")
	chaosRate = flag.Int("chaos.rate", 300, "chaos suite: requests per second through every phase")
	chaosOut  = flag.String("chaos.out", "", `chaos suite: directory for chaos.md, chaos.json and chaos.html (default: none)`)
)

// TestChaos is the chaos suite under go test (build tag chaos, make
// test-chaos): the gateway built from this tree, every scenario as a
// subtest, each failed check a test error (see check). The short form runs
// the scenarios two at a time (but those that load the whole machine,
// alone); the full form one by one.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis, Sentinel and the gateway binary under load")
	}
	bin, err := harness.BuildGateway(t.Context(), t.TempDir(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := "make test-chaos (cd loadtest && go test -race -count=1 -tags chaos ./chaos)"
	if *chaosFull {
		cmd = fmt.Sprintf("cd loadtest && go test -count=1 -timeout 30m -tags chaos -run '^TestChaos$' ./chaos -args -chaos.full -chaos.rate %d", *chaosRate)
	}
	scenarios := chaosScenarios()
	s, err := newSuite(t.Context(), bin, timingFor(*chaosFull, *chaosRate), *chaosFull, cmd, len(scenarios))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { finish(t, s.report()) }) // after every subtest
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if !*chaosFull && !sc.alone {
				t.Parallel() // the scenarios that stay run first, alone
			}
			s.run(t, i, sc)
		})
	}
}

// finish prints the report and, with -chaos.out, writes it.
func finish(t *testing.T, rep *ChaosReport) {
	md := rep.Markdown()
	fmt.Println(md)
	if *chaosOut == "" {
		return
	}
	if err := rep.Write(*chaosOut, md); err != nil {
		t.Error(err)
		return
	}
	t.Logf("wrote %s/chaos.md, chaos.json and chaos.html", *chaosOut)
}
