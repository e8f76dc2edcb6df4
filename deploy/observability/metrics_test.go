package observability

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// sourceOnly lists the metrics that the test gateway's traffic cannot
// make appear cheaply, each with the event it waits for; they are checked
// against the gateway's non-test Go source instead of its /metrics. None
// is needed today: every l1gw_* metric the rules and the dashboard name is
// in /metrics after the traffic (most are created at start, even the
// degraded, overload, breaker, panic and Sentinel ones). Add one here
// with a reason, never to quiet a failure.
var sourceOnly = map[string]string{}

// sourceIndex holds the gateway's non-test Go source, concatenated.
type sourceIndex string

// loadSource reads every non-test .go file of the gateway's module.
func loadSource(t *testing.T) sourceIndex {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "deploy" || d.Name() == "loadtest" || strings.HasPrefix(d.Name(), ".")) && path != repoRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		b.Write(src)
		b.WriteByte('\n')
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sourceIndex(b.String())
}

// has reports whether the source names the metric as a whole word (a
// histogram's _bucket, _sum and _count by the histogram's name).
func (s sourceIndex) has(name string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && s.has(base) {
			return true
		}
	}
	return regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`).MatchString(string(s))
}

// missing returns, sorted, the referenced metrics that neither the
// scrape nor, for those in srcOnly, the source shows.
func missing(refs map[string][]string, scraped map[string]bool, src sourceIndex, srcOnly map[string]string) []string {
	var out []string
	for name, where := range refs {
		if scraped[name] {
			continue
		}
		if _, ok := srcOnly[name]; ok && src.has(name) {
			continue
		}
		out = append(out, name+" (in "+strings.Join(where, "; ")+")")
	}
	sort.Strings(out)
	return out
}

// TestMetricsExist checks every l1gw_* metric that the rules and the
// dashboard reference against a running gateway's /metrics (or, for any
// listed in sourceOnly, against its source), and their label matchers
// against the exported series (labelProblems), and proves both checks
// fail on a metric, a label or a value that does not exist.
func TestMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and the gateway")
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs := append(ruleExprs(t, rules, rulesFile), dashboardExprs(loadDashboard(t))...)
	refs := referenced(t, exprs)
	if len(refs) < 10 {
		t.Fatalf("got %d l1gw_* metrics referenced; want the dashboard's and the rules' (10 at least)", len(refs))
	}

	g := startGateway(t)
	g.traffic(t)
	exp := g.scrape(t)
	scraped := exp.names()
	src := loadSource(t)

	for name := range sourceOnly {
		if !src.has(name) {
			t.Errorf("sourceOnly metric %s is not in the gateway's source", name)
		}
	}
	for name := range refs {
		if _, ok := sourceOnly[name]; ok && !scraped[name] {
			t.Logf("%s: not in /metrics after the traffic; checked in the source", name)
		}
	}
	if m := missing(refs, scraped, src, sourceOnly); len(m) > 0 {
		t.Errorf("metrics referenced but not exported by the gateway:\n  %s", strings.Join(m, "\n  "))
	}

	if p := labelProblems(exprs, exp); len(p) > 0 {
		t.Errorf("label matchers that no exported series has:\n  %s", strings.Join(p, "\n  "))
	}

	t.Run("unknown metric fails", func(t *testing.T) { testMissingFails(t, scraped, src) })
	t.Run("unknown label value fails", func(t *testing.T) { testLabelProblemsFail(t, exp) })
	t.Run("source fallback", func(t *testing.T) { testSourceFallback(t, src) })
}

// testMissingFails proves missing reports metrics that are not exported.
func testMissingFails(t *testing.T, scraped map[string]bool, src sourceIndex) {
	bad := []byte(`groups:
  - name: bad
    rules:
      - alert: Typo
        expr: rate(l1gw_request_total[5m]) > 0 or l1gw_degraded_decision_total > 0
`)
	refs := referenced(t, ruleExprs(t, bad, "bad.yaml"))
	got := missing(refs, scraped, src, sourceOnly)
	if len(got) != 2 || !strings.HasPrefix(got[0], "l1gw_degraded_decision_total ") || !strings.HasPrefix(got[1], "l1gw_request_total ") {
		t.Errorf("missing: got %q; want l1gw_degraded_decision_total and l1gw_request_total", got)
	}
}

// testLabelProblemsFail proves labelProblems reports a label, a value and
// an alternative that no exported series has.
func testLabelProblemsFail(t *testing.T, exp exported) {
	bad := []expr{
		{"ok", `l1gw_ratelimit_decisions_total{job=~".*",result="shadow_denied",tenant=~".*"}`},
		{"value", `l1gw_ratelimit_decisions_total{result="denyed"}`},
		{"alternative", `l1gw_degraded_decisions_total{reason=~"error|breakr"}`},
		{"label", `l1gw_breaker_state{shard!="x"}`},
	}
	got := labelProblems(bad, exp)
	want := []string{
		`l1gw_breaker_state{shard!="x"}: no such label (in label)`,
		`l1gw_degraded_decisions_total{reason=~"error|breakr"}: no series with reason="breakr" (in alternative)`,
		`l1gw_ratelimit_decisions_total{result="denyed"}: no series with result="denyed" (in value)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// testSourceFallback proves the source check: a metric in the source
// passes, by its histogram's name too; a near miss does not.
func testSourceFallback(t *testing.T, src sourceIndex) {
	refs := map[string][]string{
		"l1gw_panics_total":                   {"a"}, // in the source
		"l1gw_request_duration_seconds_count": {"b"}, // a histogram's, by its name
		"l1gw_panic_total":                    {"c"}, // not: a prefix of a real name
	}
	srcOnly := map[string]string{}
	for name := range refs {
		srcOnly[name] = "test"
	}
	got := missing(refs, map[string]bool{}, src, srcOnly)
	if len(got) != 1 || !strings.HasPrefix(got[0], "l1gw_panic_total ") {
		t.Errorf("missing: got %q; want only l1gw_panic_total", got)
	}
}
