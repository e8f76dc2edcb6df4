package tenants_test

import (
	"fmt"
	"time"

	"github.com/l1gw/l1gw/limiter"
	"github.com/l1gw/l1gw/tenants"
)

// A tenant resolved by a hashed key, and the rules for two requests.
func ExampleSnapshot_Resolve() {
	plans := map[string]tenants.Plan{"free": {Limits: []limiter.Rule{{Name: "per_second", Limit: 10, Window: time.Second}}}}
	snap, err := tenants.Build(tenants.Options{KeyHeader: "X-API-Key", Unknown: tenants.UnknownReject}, plans, []tenants.Spec{{
		ID: "acme", Plan: "free", KeyHashes: []string{tenants.HashKey("s3cret")},
		Routes: []tenants.RouteSpec{{Methods: []string{"POST"}, PathPrefix: "/v1/expensive",
			Limits: []limiter.Rule{{Name: "expensive", Limit: 1, Window: time.Second}}}},
	}}, func(string) bool { return true })
	if err != nil {
		panic(err)
	}
	t, res := snap.Resolve([]byte("s3cret"))
	fmt.Println(t.ID, res == tenants.Resolved)
	fmt.Println(t.Rules([]byte("GET"), []byte("/v1/things")))
	fmt.Println(t.Rules([]byte("POST"), []byte("/v1/expensive/run")))
	_, res = snap.Resolve([]byte("guess"))
	fmt.Println(res == tenants.UnknownKey)
	// Output:
	// acme true
	// [per_second: 10 per 1s]
	// [per_second: 10 per 1s expensive: 1 per 1s]
	// true
}
