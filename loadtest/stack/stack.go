package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// options says where the stack's processes listen and what they run.
type options struct {
	bin      string    // the l1gw binary
	dir      string    // the state directory: state.json, keys.txt, configs
	proxies  [2]string // the gateways' proxy listeners
	admins   [2]string // the gateways' admin listeners
	upstream string    // the demo upstream's listener; port 0 picks one
}

// Proc is one process of the stack: where it listens and its pid.
type Proc struct {
	Addr string `json:"addr"`
	Pid  int    `json:"pid"`
}

// GatewayProc is one gateway of the stack.
type GatewayProc struct {
	Proxy string `json:"proxy"`
	Admin string `json:"admin"`
	Pid   int    `json:"pid"`
}

// State is what the command writes to state.json once everything runs.
type State struct {
	Pid        int           `json:"pid"` // the stack command: make stack-down signals it
	MasterName string        `json:"master_name"`
	Primary    Proc          `json:"primary"`
	Replicas   []Proc        `json:"replicas"`
	Sentinels  []Proc        `json:"sentinels"`
	Gateways   []GatewayProc `json:"gateways"`
	Upstream   Proc          `json:"upstream"`
	KeysFile   string        `json:"keys_file"`
	KeyPrefix  string        `json:"key_prefix"`
	Tenants    int           `json:"tenants"`
	DemoKey    string        `json:"demo_key"`
	AbuserKey  string        `json:"abuser_key"`
}

// start starts the topology, the upstream and the two gateways, each
// stopped by t's cleanups, and returns what runs where. It calls t.Fatalf
// on any failure.
func start(ctx context.Context, t *harness.T, o options) *State {
	st := &State{MasterName: masterName, KeyPrefix: KeyPrefix, Tenants: Tenants, DemoKey: DemoKey, AbuserKey: AbuserKey}
	keys, err := writeKeys(o.dir)
	if err != nil {
		t.Fatalf("keys file: %v", err)
	}
	st.KeysFile = keys
	t.Logf("starting a primary, 2 replicas and 3 sentinels")
	tp := redistest.Topology(t, redistest.Options{Replicas: 2, Sentinels: 3, MasterName: masterName})
	for _, n := range tp.Nodes() {
		productionSettings(ctx, t, n)
	}
	st.Primary = nodeProc(ctx, t, tp.Primary())
	for _, r := range tp.Replicas() {
		st.Replicas = append(st.Replicas, nodeProc(ctx, t, r))
	}
	for _, s := range tp.Sentinels() {
		st.Sentinels = append(st.Sentinels, nodeProc(ctx, t, s))
	}
	up, err := startUpstream(ctx, o.bin, o.upstream)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(up.stop)
	st.Upstream = Proc{Addr: up.addr, Pid: up.cmd.Process.Pid}
	for i := range o.proxies {
		st.Gateways = append(st.Gateways, startGateway(ctx, t, o, i, up.addr, tp.SentinelAddrs()))
	}
	return st
}

// productionSettings applies the README's production Redis settings that
// the test harness leaves at their defaults, so that l1gw doctor finds the
// stack clean.
func productionSettings(ctx context.Context, t *harness.T, n *redistest.Node) {
	c := n.Client(t)
	for _, kv := range [][2]string{{"appendonly", "yes"}, {"appendfsync", "everysec"},
		{"min-replicas-to-write", "1"}, {"min-replicas-max-lag", "10"}} {
		if err := c.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatalf("CONFIG SET %s %s on %s: %v", kv[0], kv[1], n, err)
		}
	}
}

// startGateway writes gateway i's config and starts it.
func startGateway(ctx context.Context, t *harness.T, o options, i int, upstream string, sentinels []string) GatewayProc {
	cfg := filepath.Join(o.dir, fmt.Sprintf("gateway-%d.yaml", i))
	if err := writeJSON(cfg, gatewayConfig(o.proxies[i], o.admins[i], upstream, sentinels)); err != nil {
		t.Fatalf("gateway %d config: %v", i, err)
	}
	t.Logf("starting gateway %d (%s)", i, cfg)
	g, err := harness.StartGateway(ctx, o.bin, cfg)
	if err != nil {
		t.Fatalf("gateway %d: %v", i, err)
	}
	t.Cleanup(func() {
		if err := g.Stop(); err != nil {
			t.Errorf("gateway %d: %v", i, err)
		}
	})
	return GatewayProc{Proxy: g.Proxy, Admin: g.Admin, Pid: g.Pid()}
}

// nodeProc is n's address and pid (from INFO server).
func nodeProc(ctx context.Context, t *harness.T, n *redistest.Node) Proc {
	info, err := n.Client(t).Info(ctx, "server").Result()
	if err != nil {
		t.Fatalf("%s: INFO server: %v", n, err)
	}
	pid, err := infoField(info, "process_id")
	if err != nil {
		t.Fatalf("%s: %v", n, err)
	}
	return Proc{Addr: n.Addr(), Pid: pid}
}

// infoField is the integer field name of an INFO reply.
func infoField(info, name string) (int, error) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("INFO has no %s", name)
}

// sentinelPrimaries asks each sentinel which address it names as the
// primary of masterName.
func sentinelPrimaries(ctx context.Context, sentinels []Proc) ([]string, error) {
	var out []string
	for _, s := range sentinels {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: time.Second})
		addr, err := c.Do(ctx, "SENTINEL", "get-master-addr-by-name", masterName).StringSlice()
		c.Close()
		if err != nil || len(addr) != 2 {
			return nil, fmt.Errorf("sentinel %s: get-master-addr-by-name %s: %v %v", s.Addr, masterName, addr, err)
		}
		out = append(out, addr[0]+":"+addr[1])
	}
	return out, nil
}
