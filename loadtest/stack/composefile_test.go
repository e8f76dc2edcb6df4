package main

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the test checks.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string                    `yaml:"image"`
	Build       map[string]any            `yaml:"build"`
	Entrypoint  []string                  `yaml:"entrypoint"`
	Command     []string                  `yaml:"command"`
	Ports       []string                  `yaml:"ports"`
	Volumes     []string                  `yaml:"volumes"`
	DependsOn   map[string]map[string]any `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// loadCompose parses ../../docker-compose.yml (anchors and merge keys
// resolved by the YAML library, as Compose resolves them).
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return f
}

// TestComposeReferences: every service named (depends_on, --replicaof,
// the sentinels' monitor, the gateway config's addresses) exists, every
// named volume is declared, host ports do not collide, builds find the
// Dockerfile.
func TestComposeReferences(t *testing.T) {
	f := loadCompose(t)
	hostPorts := map[string]string{}
	for name, s := range f.Services {
		for dep := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("%s depends on %s: no such service", name, dep)
			}
		}
		for _, p := range s.Ports {
			host := p[:strings.LastIndex(p, ":")]
			if other, ok := hostPorts[host]; ok {
				t.Errorf("host port %s used by %s and %s", host, other, name)
			}
			hostPorts[host] = name
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat("../../" + src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := f.Volumes[src]; !ok {
				t.Errorf("%s mounts volume %s: not declared under volumes", name, src)
			}
		}
		if s.Build != nil {
			if _, err := os.Stat("../../Dockerfile"); err != nil || s.Build["context"] != "." {
				t.Errorf("%s builds from %v: want context . with the Dockerfile (%v)", name, s.Build["context"], err)
			}
		}
		if i := slices.Index(s.Command, "--replicaof"); i >= 0 {
			if _, ok := f.Services[s.Command[i+1]]; !ok || s.Command[i+2] != "6379" {
				t.Errorf("%s replicates %s:%s: no such redis service", name, s.Command[i+1], s.Command[i+2])
			}
		}
	}
	if len(hostPorts) != 4 {
		t.Errorf("%d host ports, want 4 (two gateways' proxy and admin): %v", len(hostPorts), hostPorts)
	}
}

// TestComposeSentinelsAndGateways: three sentinels monitor the primary
// service under the gateway config's master name, the gateways point at
// exactly those sentinels and at the upstream service, and are checked
// on /readyz of their admin port.
func TestComposeSentinelsAndGateways(t *testing.T) {
	f := loadCompose(t)
	monitor := regexp.MustCompile(`sentinel monitor (\S+) (\S+) 6379 2\n`)
	var sentinels []string
	for name, s := range f.Services {
		script := strings.Join(s.Command, " ")
		if !strings.Contains(script, "redis-sentinel") {
			continue
		}
		m := monitor.FindStringSubmatch(script)
		if m == nil || m[1] != masterName || f.Services[m[2]].Image != "redis:7" {
			t.Errorf("%s: monitor line %q; want %q on a redis:7 service, quorum 2", name, m, masterName)
		}
		sentinels = append(sentinels, name+":26379")
	}
	slices.Sort(sentinels)
	if !slices.Equal(sentinels, composeSentinels) {
		t.Errorf("sentinel services %v; the gateway config names %v", sentinels, composeSentinels)
	}
	cfg := gatewayConfig(":8080", ":9090", "demo-upstream:8081", composeSentinels)
	if _, ok := f.Services["demo-upstream"]; !ok || !slices.Contains(f.Services["demo-upstream"].Command, ":8081") {
		t.Errorf("no demo-upstream service listening on :8081 for the gateway's target %v", cfg.Upstreams)
	}
	gateways := 0
	for name, s := range f.Services {
		if !slices.Contains(s.Volumes, "./deploy/compose/l1gw.yaml:/etc/l1gw/l1gw.yaml:ro") {
			continue
		}
		gateways++
		_, adminPort, _ := net.SplitHostPort(cfg.Server.AdminListen)
		want := fmt.Sprintf("http://127.0.0.1:%s/readyz", adminPort)
		if !slices.Contains(s.Healthcheck.Test, want) {
			t.Errorf("%s healthcheck %v: want a GET of %s", name, s.Healthcheck.Test, want)
		}
		for _, sn := range composeSentinels {
			svc, _, _ := strings.Cut(sn, ":")
			if _, ok := s.DependsOn[svc]; !ok {
				t.Errorf("%s does not depend on %s", name, svc)
			}
		}
	}
	if gateways != 2 {
		t.Errorf("%d gateway services mount deploy/compose/l1gw.yaml, want 2", gateways)
	}
}

// TestComposeProductionRedis: the data nodes run the README's production
// settings.
func TestComposeProductionRedis(t *testing.T) {
	f := loadCompose(t)
	want := []string{"--maxmemory-policy noeviction", "--min-replicas-to-write 1",
		"--min-replicas-max-lag 10", "--appendonly yes", "--appendfsync everysec"}
	nodes := 0
	for name, s := range f.Services {
		if len(s.Command) == 0 || s.Command[0] != "redis-server" {
			continue
		}
		nodes++
		cmd := strings.Join(s.Command, " ")
		for _, w := range want {
			if !strings.Contains(cmd, w) {
				t.Errorf("%s: no %s in %q", name, w, cmd)
			}
		}
	}
	if nodes != 3 {
		t.Errorf("%d redis-server services, want 3 (a primary, 2 replicas)", nodes)
	}
}
