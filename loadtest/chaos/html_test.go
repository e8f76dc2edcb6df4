package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l1gw/l1gw/loadtest/internal/timeline"
)

func TestTimelineFaultWindows(t *testing.T) {
	marks := []phaseMark{
		{name: "before", at: at(0)},
		{name: "latency-5ms", at: at(1000), fault: true},
		{name: "latency-30ms", at: at(1500), fault: true},
		{name: "after", at: at(2000), heal: true},
		{name: "script-flushed", at: at(2600), fault: true, heal: true},
		{name: "restart", at: at(3000), fault: true},
	}
	ss := samplesOf("oodo")
	ss[2].code = 0
	tl := timelineOf("8-slow-network", marks, ss, at(4000))
	want := []timeline.Window{
		{Name: "latency-5ms", From: 1, To: 1.5},
		{Name: "latency-30ms", From: 1.5, To: 2},
		{Name: "script-flushed", From: 2.6, To: 2.6}, // a blip: no length
		{Name: "restart", From: 3, To: 4},            // never healed: to the end
	}
	if len(tl.Windows) != len(want) {
		t.Fatalf("windows: got %+v; want %+v", tl.Windows, want)
	}
	for i, w := range want {
		if tl.Windows[i] != w {
			t.Errorf("window %d: got %+v; want %+v", i, tl.Windows[i], w)
		}
	}
	s := tl.Seconds[0]
	if s.Requests != 4 || s.Degraded != 1 || s.Codes["0"] != 1 || s.Codes["200"] != 3 {
		t.Errorf("second 0: got %+v; want 4 requests, 1 degraded, 200:3 0:1", s)
	}
}

func TestReportWritesHTML(t *testing.T) {
	tl := timelineOf("1-primary-stall", []phaseMark{{name: "before", at: at(0)}, {name: "stall", at: at(10), fault: true}}, samplesOf("od"), at(20))
	rep := &ChaosReport{Form: "short", Results: []ChaosResult{{Scenario: "1-primary-stall", Timeline: &tl}, {Scenario: "stopped early"}}}
	dir := t.TempDir()
	if err := rep.Write(dir, "# md\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "chaos.html"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "<h2>"); got != 1 || !strings.Contains(string(b), "<h2>1-primary-stall</h2>") {
		t.Errorf("chaos.html: got %d sections; want one, for 1-primary-stall (the other has no timeline)", got)
	}
}
