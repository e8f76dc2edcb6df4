package harness

import (
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// ComposeTenants reads the tenants of the compose stack's gateway config
// at path (deploy/compose/l1gw.yaml, which loadtest/stack generates): each
// key to its tenant's ID. The k6 and vegeta suites' tests check their
// scripts against it.
func ComposeTenants(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Tenants []struct {
			ID   string   `yaml:"id"`
			Keys []string `yaml:"keys"`
		} `yaml:"tenant_list"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := map[string]string{}
	for _, tn := range cfg.Tenants {
		for _, k := range tn.Keys {
			m[k] = tn.ID
		}
	}
	return m, nil
}
