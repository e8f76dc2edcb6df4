package gateway

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestUpgradeOfKeepsTheListedProtocols: upgradeOf offers the upstream the
// protocols of the client's Upgrade whose name is listed, versions and
// case kept, in the client's order; nil when none is, or when the request
// is no upgrade.
func TestUpgradeOfKeepsTheListedProtocols(t *testing.T) {
	allowed := [][]byte{[]byte("websocket"), []byte("foo")}
	for _, tc := range []struct {
		name, method, connection, upgrade, want string
	}{
		{"one", "GET", "Upgrade", "websocket", "websocket"},
		{"versioned, any case", "GET", "keep-alive, upgrade", "WebSocket/13", "WebSocket/13"},
		{"h2c dropped", "GET", "Upgrade, HTTP2-Settings", "h2c, foo/2 ,websocket", "foo/2, websocket"},
		{"none listed", "GET", "Upgrade", "h2c", ""},
		{"a name only in a version", "GET", "Upgrade", "x/websocket", ""},
		{"Connection does not name it", "GET", "keep-alive", "websocket", ""},
		{"not a GET", "POST", "Upgrade", "websocket", ""},
		{"empty tokens", "GET", "Upgrade", " , ,", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			h.SetMethod(tc.method)
			h.Set("Connection", tc.connection)
			h.Set("Upgrade", tc.upgrade)
			if got := string(upgradeOf(&h, allowed)); got != tc.want {
				t.Fatalf("upgradeOf(Connection: %s, Upgrade: %s) = %q; want %q", tc.connection, tc.upgrade, got, tc.want)
			}
		})
	}
}
