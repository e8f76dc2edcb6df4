package observability

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// targetLabels are added by Prometheus at scrape time; /metrics has none.
var targetLabels = map[string]bool{"job": true, "instance": true, model.MetricNameLabel: true}

// literals matches a regex that is nothing but literal alternatives: a|b.
var literals = regexp.MustCompile(`^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$`)

// labelProblems checks the label matchers of every l1gw_* selector in
// exprs against exp: the label must be on the metric, and an equality
// matcher's value, or each alternative of a regex of literals, one the
// metric is exported with. Other regexes and negative matchers are checked
// for the label alone. Expressions that do not parse are left to
// referenced, which reports them.
func labelProblems(exprs []expr, exp exported) []string {
	set := map[string]bool{}
	for _, e := range exprs {
		vss, err := selectors(e.query)
		if err != nil {
			continue
		}
		for _, vs := range vss {
			name := selectorName(vs)
			got, ok := exp[name]
			if !strings.HasPrefix(name, "l1gw_") || !ok {
				continue // a missing metric is missing's to report
			}
			for _, m := range vs.LabelMatchers {
				if p := matcherProblem(m, got); p != "" && !targetLabels[m.Name] {
					set[fmt.Sprintf("%s{%s}: %s (in %s)", name, m, p, e.where)] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// matcherProblem says what of m the metric's exported labels lack, or "".
func matcherProblem(m *labels.Matcher, got map[string]map[string]bool) string {
	values, ok := got[m.Name]
	if !ok {
		return "no such label"
	}
	var want []string
	switch {
	case m.Type == labels.MatchEqual:
		want = []string{m.Value}
	case m.Type == labels.MatchRegexp && literals.MatchString(m.Value):
		want = strings.Split(m.Value, "|")
	}
	for _, v := range want {
		if !values[v] {
			return fmt.Sprintf("no series with %s=%q", m.Name, v)
		}
	}
	return ""
}
