package observability

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestRulesParse parses the rule file and every expression in it, and
// checks the PrometheusRule holds the same groups and that every alert
// says what, why and what to do.
func TestRulesParse(t *testing.T) {
	content, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs := ruleExprs(t, content, rulesFile)
	if len(exprs) < 10 {
		t.Fatalf("got %d rules; want 10 at least", len(exprs))
	}
	referenced(t, exprs) // every expression through the PromQL parser

	var file, cr struct {
		Groups []map[string]any `yaml:"groups"`
		Kind   string           `yaml:"kind"`
		Spec   struct {
			Groups []map[string]any `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(content, &file); err != nil {
		t.Fatal(err)
	}
	crContent, err := os.ReadFile(ruleCRFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(crContent, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Kind != "PrometheusRule" || !reflect.DeepEqual(cr.Spec.Groups, file.Groups) {
		t.Errorf("%s: got kind %q and groups that differ from %s; want a PrometheusRule with the same groups", ruleCRFile, cr.Kind, rulesFile)
	}

	for _, g := range file.Groups {
		for _, r := range g["rules"].([]any) {
			rule := r.(map[string]any)
			ann, _ := rule["annotations"].(map[string]any)
			lab, _ := rule["labels"].(map[string]any)
			for _, k := range []string{"summary", "description", "runbook"} {
				if s, _ := ann[k].(string); strings.TrimSpace(s) == "" {
					t.Errorf("alert %v: no %s annotation", rule["alert"], k)
				}
			}
			if lab["severity"] == nil {
				t.Errorf("alert %v: no severity label", rule["alert"])
			}
		}
	}
}

// TestDashboard checks the dashboard is what Grafana imports: panels with
// unique ids and a position, every query on the $datasource variable,
// every expression PromQL once its variables are substituted.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("got title %q, uid %q; want both", d.Title, d.UID)
	}
	b, _ := os.ReadFile(dashboardFile)
	var raw struct {
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, p := range raw.Panels {
		if _, ok := p["gridPos"].(map[string]any); !ok {
			t.Errorf("panel %v %q: no gridPos", p["id"], p["title"])
		}
	}
	hasDS := false
	for _, v := range d.Templating.List {
		hasDS = hasDS || v.Type == "datasource" && string(v.Query) == `"prometheus"`
	}
	if !hasDS {
		t.Error("no datasource variable of type prometheus")
	}
	const ds = `{"type":"prometheus","uid":"${datasource}"}`
	ids := map[int]bool{}
	for _, p := range flatPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel %d %q: id used twice", p.ID, p.Title)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 || compact(p.Datasource) != ds {
			t.Errorf("panel %d %q: got %d targets, datasource %s; want targets on %s", p.ID, p.Title, len(p.Targets), p.Datasource, ds)
		}
		for _, tg := range p.Targets {
			if histogramPart.MatchString(tg.Expr) && !strings.Contains(p.Description, "histogram_quantile cannot") {
				t.Errorf("panel %d %q reads a VictoriaMetrics histogram; want its description to say why it shows no quantile", p.ID, p.Title)
			}
			if compact(tg.Datasource) != ds {
				t.Errorf("panel %d %q target %s: datasource %s; want %s", p.ID, p.Title, tg.RefID, tg.Datasource, ds)
			}
		}
	}
	exprs := dashboardExprs(d)
	if len(exprs) < 20 {
		t.Fatalf("got %d expressions; want 20 at least", len(exprs))
	}
	referenced(t, exprs) // every expression through the PromQL parser
}

// histogramPart matches a series of one of l1gw's (VictoriaMetrics)
// histograms.
var histogramPart = regexp.MustCompile(`l1gw_\w+_(bucket|sum|count)\b`)

// compact returns JSON without insignificant space.
func compact(b json.RawMessage) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
