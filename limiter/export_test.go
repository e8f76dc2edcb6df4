package limiter

// MemoryTenants counts the tenants s tracks, for tests.
func MemoryTenants(s *MemoryStore) int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.tenants)
		sh.mu.Unlock()
	}
	return n
}

// CommandCalls is how many times c's server has run the command name.
var CommandCalls = commandCalls

// CommandStats is how many times c's server has run the command name, and
// the µs it spent on them.
var CommandStats = commandStats

// SentinelsReachableOf is s's Clients' SentinelsReachable.
func SentinelsReachableOf(s *RedisStore) int { return s.clients.SentinelsReachable() }

// StopClusterSweeps keeps s's Cluster route of primaries from sweeping its
// slot map, as if every change a test makes came between two sweeps. Call
// it before Connect, which starts the sweeps.
func StopClusterSweeps(s *RedisStore) {
	if r, ok := s.primary.(*clusterRoute); ok {
		r.sweeping.Do(func() {})
	}
}
