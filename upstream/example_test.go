package upstream_test

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/l1gw/l1gw/upstream"
)

// Routing: a route with a host beats one without, then the longest path
// prefix wins; the port of the Host header is ignored.
func ExampleProxy_Route() {
	spec := func(target string) upstream.Spec {
		return upstream.Spec{Targets: []string{target}, Timeout: 30 * time.Second, DialTimeout: 2 * time.Second,
			IdleConnTimeout: time.Minute, MaxConnsPerTarget: 1024}
	}
	specs := map[string]upstream.Spec{
		"web": spec("http://127.0.0.1:8081"),
		"api": spec("http://127.0.0.1:8082"),
		"v2":  spec("http://127.0.0.1:8083"),
	}
	routes := []upstream.RouteSpec{
		{Upstream: "web"},
		{PathPrefix: "/api/", Upstream: "api"},
		{Host: "api.example.com", PathPrefix: "/v2/", Upstream: "v2"},
	}
	p, err := upstream.New(specs, routes, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range [][2]string{{"example.com", "/"}, {"example.com", "/api/users"}, {"api.example.com:8443", "/v2/users"}, {"example.com", "/v2/users"}} {
		for name := range specs {
			if pool, _ := p.Pool(name); pool == p.Route([]byte(r[0]), []byte(r[1])) {
				fmt.Printf("%s%s → %s\n", r[0], r[1], name)
			}
		}
	}
	// Output:
	// example.com/ → web
	// example.com/api/users → api
	// api.example.com:8443/v2/users → v2
	// example.com/v2/users → web
}
