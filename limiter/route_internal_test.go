package limiter

import "testing"

func TestTallySentinelAnswers(t *testing.T) {
	m := func(port, epoch, flags string) map[string]string {
		return map[string]string{"ip": "10.0.0.1", "port": port, "config-epoch": epoch, "flags": flags}
	}
	cases := []struct {
		name      string
		answers   []map[string]string
		addr      string
		doubt     bool
		sentinels int
	}{
		{"agree", []map[string]string{m("1", "3", "master"), m("1", "3", "master")}, "10.0.0.1:1", false, 3},
		{"the newest epoch wins over a stale majority",
			[]map[string]string{m("1", "3", "master"), m("1", "3", "master"), m("2", "4", "master")}, "10.0.0.1:2", false, 3},
		{"one sentinel's own s_down is not doubt", []map[string]string{m("1", "3", "master,s_down"), m("1", "3", "master")}, "10.0.0.1:1", false, 3},
		{"s_down from a majority of all", []map[string]string{m("1", "3", "master,s_down"), m("1", "3", "master,s_down")}, "10.0.0.1:1", true, 3},
		{"o_down from one", []map[string]string{m("1", "3", "master,s_down,o_down")}, "10.0.0.1:1", true, 3},
		{"a failover in progress", []map[string]string{m("1", "3", "master,failover_in_progress"), m("1", "3", "master")}, "10.0.0.1:1", true, 3},
		{"none answered", nil, "", false, 3},
	}
	for _, c := range cases {
		addr, doubt := tally(c.answers, c.sentinels)
		if addr != c.addr || doubt != c.doubt {
			t.Errorf("%s: got %q doubt=%v; want %q doubt=%v", c.name, addr, doubt, c.addr, c.doubt)
		}
	}
}
