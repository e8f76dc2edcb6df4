package limiter

import "testing"

// TestClusterRouteMarksPromotedMasters: the first slot map's masters are
// the route's own; a master met later (on the decision path or by a
// sweep), or named again after a sweep found it gone, may lack records a
// failover lost and is marked; a read route marks nothing.
func TestClusterRouteMarksPromotedMasters(t *testing.T) {
	marked := func(r *clusterRoute, addr string) bool {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.pipes[addr] != nil && r.pipes[addr].health.lostAt.Load() != 0
	}
	set := func(addrs ...string) map[string]bool {
		m := map[string]bool{}
		for _, a := range addrs {
			m[a] = true
		}
		return m
	}
	r := newClusterRoute(nil, testCfg(), false)
	r.pipeAt("a:1") // before the first map (Connect failed): the route's own
	r.meet(set("a:1", "b:1"))
	r.meet(set("a:1", "b:1")) // a sweep finding the same map
	for _, addr := range []string{"a:1", "b:1"} {
		if marked(r, addr) {
			t.Fatalf("%s, in the first slot map, is marked promoted", addr)
		}
	}
	r.pipeAt("c:1") // a failover's new master, met by a decision
	if !marked(r, "c:1") {
		t.Fatal("a master met after the first map is not marked promoted")
	}
	r.meet(set("a:1", "c:1", "d:1")) // d met by a sweep first
	if !marked(r, "d:1") || marked(r, "a:1") {
		t.Fatalf("sweep: d marked %v, a marked %v; want d only", marked(r, "d:1"), marked(r, "a:1"))
	}
	r.gone = set("b:1") // the last sweep did not find b
	r.meet(set("a:1", "b:1", "c:1", "d:1"))
	if !marked(r, "b:1") {
		t.Fatal("a master named again after a sweep found it gone (a failback) is not marked")
	}

	ro := newClusterRoute(nil, testCfg(), true)
	ro.meet(set("a:2"))
	ro.pipeAt("b:2")
	if marked(ro, "b:2") {
		t.Fatal("a read route marked a replica it met later")
	}
}
