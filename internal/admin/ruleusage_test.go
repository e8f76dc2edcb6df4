package admin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/l1gw/l1gw/limiter"
)

// TestRuleUsageShowsTheAlgorithm: a quota shows its algorithm and period
// and no window; a sliding log shows its window and no algorithm.
func TestRuleUsageShowsTheAlgorithm(t *testing.T) {
	cases := []struct {
		r    limiter.Rule
		want string
	}{
		{limiter.Rule{Name: "per_minute", Limit: 5, Window: time.Minute},
			`{"name":"per_minute","limit":5,"window":"1m0s","used":2,"remaining":3,"reset_seconds":1}`},
		{limiter.Rule{Name: "burst", Limit: 5, Window: time.Second, Algorithm: limiter.AlgoSlidingWindow},
			`{"name":"burst","limit":5,"window":"1s","used":2,"remaining":3,"reset_seconds":1,"algorithm":"sliding_window"}`},
		{limiter.Rule{Name: "monthly", Limit: 5, Algorithm: limiter.AlgoFixed, Period: limiter.PeriodMonth},
			`{"name":"monthly","limit":5,"used":2,"remaining":3,"reset_seconds":1,"algorithm":"fixed","period":"month"}`},
	}
	for _, tc := range cases {
		b, err := json.Marshal(ruleUsage(limiter.RuleUsage{Rule: tc.r, Used: 2, Reset: time.Second}))
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: got %s, %v; want %s", tc.r.Name, b, err, tc.want)
		}
	}
}
