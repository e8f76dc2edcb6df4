package harness_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

func TestCPUTicks(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int64
		ok   bool
	}{
		{"1234 (l1gw) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0", 325, true},
		// The command name may hold spaces and parentheses.
		{"42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0", 10, true},
		{"42 (x) R 1 2 3", 0, false},                    // too few fields
		{"42 x R 1 2 3 4 5 6 7 8 9 10 11 12", 0, false}, // no ')'
		{"42 (x) R 1 1 1 0 -1 0 0 0 0 0 abc 3 0", 0, false},
		{"42 (x) R 1 1 1 0 -1 0 0 0 0 0 1 -3 0", 0, false},
		{"", 0, false},
	} {
		got, err := harness.CPUTicks([]byte(tc.stat))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("CPUTicks(%q) = %d, %v; want %d, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
	if _, err := harness.ProcCPUTicks(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

func TestStatusFields(t *testing.T) {
	status := []byte("Name:\tl1gw\nCpus_allowed:\t1\nCpus_allowed_list:\t0\nVmRSS:\t   10328 kB\n")
	if got, err := harness.StatusField(status, "Cpus_allowed_list"); err != nil || got != "0" {
		t.Errorf("got %q, %v", got, err)
	}
	if got, err := harness.StatusField(status, "Cpus_allowed"); err != nil || got != "1" {
		t.Errorf("the prefix of a longer name: got %q, %v", got, err)
	}
	if _, err := harness.StatusField(status, "Threads"); err == nil {
		t.Error("no error for a missing field")
	}
	if got, err := harness.VmRSS(status); err != nil || got != 10328 {
		t.Errorf("VmRSS: got %d, %v; want 10328", got, err)
	}
	if _, err := harness.VmRSS([]byte("VmRSS:\t12 MB\n")); err == nil {
		t.Error("VmRSS in MB: no error")
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "localhost:80": false, "10.0.0.1:80": false, "[::1]:80": false, "127.0.0.1": false, "": false,
	} {
		if err := harness.CheckLoopback(addr); (err == nil) != ok {
			t.Errorf("CheckLoopback(%q) = %v", addr, err)
		}
	}
}

func TestGatewayEnv(t *testing.T) {
	got := harness.GatewayEnv([]string{"PATH=/bin", "L1GW_REDIS__MODE=cluster", "HOME=/root"})
	if len(got) != 2 || got[0] != "PATH=/bin" || got[1] != "HOME=/root" {
		t.Fatalf("got %q; want PATH and HOME only", got)
	}
}

func TestUpstream(t *testing.T) {
	u, err := harness.StartUpstream("body\n")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	for path, want := range map[string]string{"/x": "body\n", "/healthz": "ok\n"} {
		resp, err := http.Get("http://" + u.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("%s: %d %q; want 200 %q", path, resp.StatusCode, b, want)
		}
	}
}

// TestCPUModel: the first "model name" line, or none.
func TestCPUModel(t *testing.T) {
	info := []byte("processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU @ 3GHz\nmodel name\t: other\n")
	if m, ok := harness.CPUModel(info); !ok || m != "Some CPU @ 3GHz" {
		t.Errorf("got %q, %v", m, ok)
	}
	if _, ok := harness.CPUModel([]byte("processor: 0\n")); ok {
		t.Error("found a model in cpuinfo without one")
	}
}

func TestMakeCommand(t *testing.T) {
	for _, c := range []struct {
		bin  string
		args []string
		want string
	}{
		{harness.DefaultBin, nil, "make chaos"},
		{harness.DefaultBin, []string{"-rate 300", "-short"}, "make chaos CHAOS_ARGS='-rate 300 -short'"},
		{"/tmp/l1gw", []string{"-rate 300"}, "make chaos CHAOS_ARGS='-bin /tmp/l1gw -rate 300'"},
	} {
		if got := harness.MakeCommand("chaos", "CHAOS_ARGS", c.bin, c.args...); got != c.want {
			t.Errorf("MakeCommand(%q, %q) = %s; want %s", c.bin, c.args, got, c.want)
		}
	}
}
