//go:build !race

package gateway

import "testing"

// TestServeDoesNotAllocate guards the hot path: an admitted, forwarded
// request and a denied one cost no heap allocation once warm.
func TestServeDoesNotAllocate(t *testing.T) {
	cases := []struct {
		name, key string
		want      int
	}{
		{"admitted", "bulk-key", 200},
		{"denied", "acme-key", 429},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newHandlerFixture(t, tc.key, "GET", "/alloc")
			for range 10 {
				f.serve()
			}
			var code int
			allocs := testing.AllocsPerRun(200, func() { code = f.serve() })
			if code != tc.want {
				t.Fatalf("status %d; want %d", code, tc.want)
			}
			if allocs > 0 {
				t.Fatalf("%.1f allocations per request; want 0", allocs)
			}
		})
	}
}
