package k6_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The default targets: the two gateways of `make stack`.
var defaultTargets = []string{"http://127.0.0.1:18080/loadtest/", "http://127.0.0.1:18082/loadtest/"}

// TestScriptsUnderShim runs each script's scenarios under the shim: every
// request is a GET of a default target with a key the stack serves,
// tagged with that key's tenant; every answer is recorded in the custom
// metrics, tagged by tenant and X-RateLimit-Status; 503s are counted as
// server errors, degraded answers as degraded; the shared thresholds are
// there.
func TestScriptsUnderShim(t *testing.T) {
	tenants := stackTenants(t)
	dir := stage(t)
	for _, s := range scripts {
		t.Run(s, func(t *testing.T) {
			r, err := runShim(t, dir, s, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkRequests(t, r, tenants)
			checkSamples(t, r)
			if got := r.Thresholds["http_req_duration"]; len(got) != 1 || got[0] != "p(99)<50" {
				t.Errorf("http_req_duration thresholds %v, want [p(99)<50]", got)
			}
			if got := r.Thresholds["server_errors"]; len(got) != 1 || got[0] != "rate==0" {
				t.Errorf("server_errors thresholds %v, want [rate==0]", got)
			}
		})
	}
}

// checkRequests checks the shape of every recorded request.
func checkRequests(t *testing.T, r shimRun, tenants map[string]string) {
	t.Helper()
	for name, reqs := range r.Runs {
		if len(reqs) != 4*iterations {
			t.Errorf("scenario %s sent %d requests in %d iterations", name, len(reqs), 4*iterations)
		}
		for _, q := range reqs {
			key := q.Headers["X-API-Key"]
			if q.Method != "GET" || !(strings.HasPrefix(q.URL, defaultTargets[0]) || strings.HasPrefix(q.URL, defaultTargets[1])) {
				t.Fatalf("scenario %s: %s %s, want a GET of %v", name, q.Method, q.URL, defaultTargets)
			}
			if tn, ok := tenants[key]; !ok || q.Tags["tenant"] != tn {
				t.Fatalf("scenario %s: key %q tagged tenant %q; the stack has it for %q (%v)", name, key, q.Tags["tenant"], tn, ok)
			}
		}
	}
}

// checkSamples checks the custom metrics against the answers the shim
// gave: 200 ok, 429 limited, 200 degraded and 503 without the header,
// iterations of each per scenario.
func checkSamples(t *testing.T, r shimRun) {
	t.Helper()
	hits := map[string]int{} // metric/rl_status of the samples with a non-zero value
	for _, s := range r.Samples {
		if s.Tags["tenant"] == "" || s.Tags["rl_status"] == "" {
			t.Fatalf("sample %+v: no tenant or rl_status tag", s)
		}
		if s.Value != 0 {
			hits[s.Metric+"/"+s.Tags["rl_status"]]++
		}
	}
	n := iterations * len(r.Scenarios) // requests per kind of answer
	want := map[string]int{"server_errors/none": n, "rate_limited/limited": n, "degraded/degraded": n,
		"answers/ok": n, "answers/limited": n, "answers/degraded": n, "answers/none": n}
	for k, w := range want {
		if hits[k] != w {
			t.Errorf("metric/rl_status %s: %d hits, want %d", k, hits[k], w)
		}
	}
	if len(hits) != len(want) {
		t.Errorf("hits %v, want only %v", hits, want)
	}
	if r.Checks["no 5xx"] != n {
		t.Errorf("check 'no 5xx' failed %d times, want %d (the 503s)", r.Checks["no 5xx"], n)
	}
}

// TestAbuserKeys: the abuser scenario alone uses the abuser's key, and
// its share of 429s is what the thresholds expect.
func TestAbuserKeys(t *testing.T) {
	r, err := runShim(t, stage(t), "abuser.js", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, reqs := range r.Runs {
		for _, q := range reqs {
			if (q.Headers["X-API-Key"] == "stack-abuser-key") != (name == "abuser") {
				t.Fatalf("scenario %s sent key %s", name, q.Headers["X-API-Key"])
			}
		}
	}
	if got := r.Thresholds["rate_limited{scenario:abuser}"]; len(got) != 1 || got[0] != "rate>0.925" {
		t.Errorf("abuser threshold %v, want [rate>0.925] (19 of 20 denied, with margin)", got)
	}
}

// TestSteadyZipfAndLimit: steady's busiest key is the first one, and a
// RATE that would push it past its plan is refused in setup.
func TestSteadyZipfAndLimit(t *testing.T) {
	dir := stage(t)
	r, err := runShim(t, dir, "steady.js", nil)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, q := range r.Runs["steady"] {
		count[q.Headers["X-API-Key"]]++
	}
	for k, c := range count {
		if k != "stack-key-0000" && c >= count["stack-key-0000"] {
			t.Errorf("key %s drawn %d times, stack-key-0000 %d: not Zipf", k, c, count["stack-key-0000"])
		}
	}
	_, err = runShim(t, dir, "steady.js", map[string]string{"RATE": "1000"})
	var se *shimError
	if !errors.As(err, &se) || !strings.Contains(se.stderr, "busiest tenant") {
		t.Errorf("RATE=1000: %v; want setup to refuse it", err)
	}
}

// TestKeysFile: KEYS and TARGET are honoured: only the file's keys, with
// the file's tenants, go to the given target.
func TestKeysFile(t *testing.T) {
	dir := stage(t)
	keys := filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(keys, []byte("# comment\nk-a ta\nk-b tb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := runShim(t, dir, "failover.js", map[string]string{"KEYS": keys, "TARGET": "http://gw:1/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range r.Runs["failover"] {
		k, tn := q.Headers["X-API-Key"], q.Tags["tenant"]
		if !(k == "k-a" && tn == "ta" || k == "k-b" && tn == "tb") || q.URL != "http://gw:1/loadtest/failover" {
			t.Fatalf("request %+v: want k-a/ta or k-b/tb to http://gw:1/loadtest/failover", q)
		}
	}
}
