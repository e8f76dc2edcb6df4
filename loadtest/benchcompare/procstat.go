package main

import "github.com/l1gw/l1gw/loadtest/internal/harness"

// cpuMicrosPerRequest is the CPU time between two tick samples, in µs,
// divided by requests; ok is false when there were no requests.
func cpuMicrosPerRequest(before, after, requests int64) (float64, bool) {
	if requests <= 0 || after < before {
		return 0, false
	}
	return float64(after-before) * (1e6 / harness.UserHZ) / float64(requests), true
}
