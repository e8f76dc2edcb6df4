package limiter_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

func TestRuleJSON(t *testing.T) {
	r := limiter.Rule{Name: "per_minute", Limit: 60, Window: time.Minute, Cost: 2}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"window":"1m0s"`) {
		t.Fatalf("got %s; want the window as a duration string", b)
	}
	var back limiter.Rule
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Fatalf("round trip: got %+v, %v; want %+v", back, err, r)
	}
	quota := limiter.Rule{Name: "monthly", Limit: 1_000_000, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth, Anchor: 15, Timezone: "Europe/Berlin"}
	for _, in := range []string{`{"name":"monthly","limit":1000000,"algorithm":"fixed","period":"month","anchor":15,"timezone":"Europe/Berlin"}`,
		`{"name":"monthly","limit":1000000,"algorithm":"fixed","period":"month","anchor":15,"timezone":"Europe\/Berlin"}`} {
		var got limiter.Rule
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != quota {
			t.Errorf("%s: got %+v, %v; want %+v", in, got, err, quota)
		}
	}
	for in, want := range map[string]time.Duration{`{"name":"a","limit":1,"window":"250ms"}`: 250 * time.Millisecond,
		`{"name":"a","limit":1,"window":1000000000}`: time.Second} {
		var got limiter.Rule
		if err := json.Unmarshal([]byte(in), &got); err != nil || got.Window != want {
			t.Errorf("%s: got %v, %v; want window %v", in, got.Window, err, want)
		}
	}
	for _, in := range []string{`{"name":"a","limit":1,"window":"soon"}`, `{"name":"a","limit":1,"window":"1s","burst":3}`, `{"name":"a","limit":1,"window":true}`,
		`{"name":"a,\"b\":1","limit":1,"window":"1s","x":{"name":"y"}}`, `{"name":"a","limit":1,"window":"1s","mode":"x","":1}`} {
		var got limiter.Rule
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("%s: got no error; want one", in)
		}
	}
}
