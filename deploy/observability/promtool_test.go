package observability

import (
	"os"
	"os/exec"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"
)

const rulesTestFile = "prometheus/l1gw-rules.test.yaml"

// TestRulesFire runs promtool's unit tests of the rules (promtool check
// rules, then promtool test rules), and checks each alert of the rule file
// fires in at least one of them.
func TestRulesFire(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run make test-deps (Debian's prometheus package)")
	}
	for _, args := range [][]string{{"check", "rules", "l1gw-rules.yaml"}, {"test", "rules", "l1gw-rules.test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}

	content, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert string }
		}
	}
	if err := yaml.Unmarshal(content, &rules); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, m := range regexp.MustCompile(`alertname="(\w+)",alertstate="firing"`).FindAllStringSubmatch(string(tests), -1) {
		fired[m[1]] = true
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !fired[r.Alert] {
				t.Errorf("alert %s: no test in %s makes it fire", r.Alert, rulesTestFile)
			}
		}
	}
}
