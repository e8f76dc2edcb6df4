package observability

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	rulesFile     = "prometheus/l1gw-rules.yaml"
	ruleCRFile    = "prometheus/l1gw-prometheusrule.yaml"
	dashboardFile = "grafana/l1gw-dashboard.json"
)

// expr is one PromQL expression and where it was found.
type expr struct {
	where string // "rule L1gwBreakerOpen", "panel 3 \"Breaker\" target A"
	query string
}

// ruleExprs parses a rule file with the Prometheus rule parser (which also
// parses each expression and checks each template) and returns its
// expressions.
func ruleExprs(t *testing.T, content []byte, name string) []expr {
	t.Helper()
	groups, errs := rulefmt.Parse(content, false, model.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", name, errs)
	}
	var out []expr
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			id := r.Alert
			if id == "" {
				id = r.Record
			}
			out = append(out, expr{where: fmt.Sprintf("%s: rule %s", name, id), query: r.Expr})
		}
	}
	return out
}

// Grafana's built-in interval variables, then any other variable
// ($var, ${var}, ${var:fmt}, [[var]]; not a regex group's $1), replaced
// before parsing.
var (
	grafanaInterval = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)\}?`)
	grafanaVar      = regexp.MustCompile(`\$\{([A-Za-z_]\w*)(:\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]`)
)

// substitute turns a Grafana query into PromQL: intervals become 5m, a
// variable in vals its value, and any other variable (which the dashboard
// uses only inside label matchers) ".*".
func substitute(q string, vals map[string]string) string {
	q = grafanaInterval.ReplaceAllString(q, "5m")
	return grafanaVar.ReplaceAllStringFunc(q, func(v string) string {
		m := grafanaVar.FindStringSubmatch(v)
		if val, ok := vals[m[1]+m[3]+m[4]]; ok {
			return val
		}
		return ".*"
	})
}

// panel is the part of a Grafana panel the tests read.
type panel struct {
	ID          int             `json:"id"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Type        string          `json:"type"`
	Datasource  json.RawMessage `json:"datasource"`
	Targets     []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name    string          `json:"name"`
			Type    string          `json:"type"`
			Query   json.RawMessage `json:"query"`
			Current struct {
				Value json.RawMessage `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// flatPanels lists the panels, a collapsed row's included.
func flatPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

// labelValues matches a query variable's label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

// dashboardExprs returns every panel target's expression and the selector
// of every label_values variable, variables substituted.
func dashboardExprs(d dashboard) []expr {
	vals := map[string]string{} // the custom variables' current values
	for _, v := range d.Templating.List {
		var val string
		if v.Type == "custom" && json.Unmarshal(v.Current.Value, &val) == nil {
			vals[v.Name] = val
		}
	}
	var out []expr
	for _, p := range flatPanels(d.Panels) {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("%s: panel %d %q target %s", dashboardFile, p.ID, p.Title, tg.RefID)
			out = append(out, expr{where: where, query: substitute(tg.Expr, vals)})
		}
	}
	for _, v := range d.Templating.List {
		var q string
		if v.Type != "query" || json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			if v.Type != "query" || json.Unmarshal(v.Query, &obj) != nil {
				continue
			}
			q = obj.Query
		}
		if m := labelValues.FindStringSubmatch(q); m != nil {
			out = append(out, expr{where: fmt.Sprintf("%s: variable %s", dashboardFile, v.Name), query: substitute(m[1], vals)})
		}
	}
	return out
}

// selectors parses q with the PromQL parser and returns its vector
// selectors.
func selectors(q string) ([]*parser.VectorSelector, error) {
	ast, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		return nil, err
	}
	var out []*parser.VectorSelector
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out, nil
}

// selectorName returns a selector's metric name: its name or an exact
// __name__ matcher's value.
func selectorName(vs *parser.VectorSelector) string {
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return vs.Name
}

// metricNames parses q and returns, sorted, the metric names of its
// vector selectors.
func metricNames(q string) ([]string, error) {
	vss, err := selectors(q)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, vs := range vss {
		if n := selectorName(vs); n != "" {
			set[n] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// referenced parses every expression and returns, for each l1gw_* metric
// name, where it is used; a parse error fails t.
func referenced(t *testing.T, exprs []expr) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, e := range exprs {
		names, err := metricNames(e.query)
		if err != nil {
			t.Errorf("%s: %v\n%s", e.where, err, e.query)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", e.where, e.query)
		}
		for _, n := range names {
			if strings.HasPrefix(n, "l1gw_") {
				out[n] = append(out[n], e.where)
			}
		}
	}
	return out
}
