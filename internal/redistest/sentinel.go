package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// errNoPrimary reports that no running data node says it is master.
var errNoPrimary = errors.New("redistest: no running data node has ROLE master")

// reachableSentinels returns the sentinels that are running and not stalled.
func (tp *Topo) reachableSentinels() []*Node {
	var ss []*Node
	for _, s := range tp.sentinels {
		if s.Running() && !s.Stalled() {
			ss = append(ss, s)
		}
	}
	return ss
}

// askSentinel sends sentinel s "SENTINEL <sub> <master name>" over RESP2,
// where every reply is a flat list of strings.
func (tp *Topo) askSentinel(s *Node, sub string) ([]string, error) {
	var r []string
	err := probe(s.Addr(), func(ctx context.Context, c *redis.Client) (err error) {
		r, err = c.Do(ctx, "SENTINEL", sub, tp.opts.MasterName).StringSlice()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("SENTINEL %s %s on %s: %w", sub, tp.opts.MasterName, s, err)
	}
	return r, nil
}

// masterAddr asks sentinel s for the primary's address.
func (tp *Topo) masterAddr(s *Node) (string, error) {
	r, err := tp.askSentinel(s, "GET-MASTER-ADDR-BY-NAME")
	if err != nil {
		return "", err
	}
	if len(r) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME %s on %s: got %d elements; want host and port", tp.opts.MasterName, s, len(r))
	}
	return net.JoinHostPort(r[0], r[1]), nil
}

// currentPrimary returns the primary per the reachable sentinels: the
// address most of them give, or, with unanimous, the address all of them
// give (any error or disagreement fails). With no reachable sentinel it
// falls back to the one running data node whose ROLE is master.
func (tp *Topo) currentPrimary(unanimous bool) (*Node, error) {
	ss := tp.reachableSentinels()
	if len(ss) == 0 {
		return tp.rolePrimary()
	}
	votes := make(map[string]int)
	best, errs := "", []string(nil)
	for _, s := range ss {
		addr, err := tp.masterAddr(s)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		votes[addr]++
		if votes[addr] > votes[best] {
			best = addr
		}
	}
	switch {
	case best == "":
		return nil, fmt.Errorf("no sentinel answered: %s", strings.Join(errs, "; "))
	case unanimous && (len(errs) > 0 || len(votes) > 1):
		return nil, fmt.Errorf("sentinels disagree: votes %v, errors %v", votes, errs)
	}
	return tp.byAddr(best)
}

// rolePrimary returns the one running, unstalled data node whose ROLE is
// master.
func (tp *Topo) rolePrimary() (*Node, error) {
	var masters []*Node
	for _, n := range tp.nodes {
		if !n.Running() || n.Stalled() {
			continue
		}
		if r, err := role(n.Addr()); err == nil && r == "master" {
			masters = append(masters, n)
		}
	}
	switch len(masters) {
	case 0:
		return nil, errNoPrimary
	case 1:
		return masters[0], nil
	}
	return nil, fmt.Errorf("%d data nodes have ROLE master: %v", len(masters), masters)
}

// restartPrimaryPort returns the port a restarting data node n must
// replicate, or 0 when n itself is still the primary (or nothing else is).
func (tp *Topo) restartPrimaryPort(t TB, n *Node) int {
	t.Helper()
	var p *Node
	err := poll(startTimeout, func() error {
		var err error
		p, err = tp.currentPrimary(false)
		return err
	})
	switch {
	case errors.Is(err, errNoPrimary):
		return 0
	case err != nil:
		t.Fatalf("redistest: restart %s: find the current primary: %v", n, err)
	case p == n:
		return 0
	}
	return p.Port()
}

// waitDiscovery waits until every sentinel names primary and lists every
// other data node as a healthy replica and every other sentinel.
func (tp *Topo) waitDiscovery(t TB, primary *Node) {
	t.Helper()
	for _, s := range tp.sentinels {
		err := poll(discoveryTimeout, func() error { return tp.checkSentinel(s, primary) })
		if err != nil {
			t.Fatalf("redistest: %s waiting %v to know primary %s, %d replicas and %d other sentinels: %v",
				s, discoveryTimeout, primary, len(tp.nodes)-1, len(tp.sentinels)-1, err)
		}
	}
}

// checkSentinel reports what sentinel s does not know yet.
func (tp *Topo) checkSentinel(s, primary *Node) error {
	addr, err := tp.masterAddr(s)
	if err != nil {
		return err
	}
	if addr != primary.Addr() {
		return fmt.Errorf("names primary %s; want %s", addr, primary.Addr())
	}
	var wantReplicas, wantSentinels []*Node
	for _, n := range tp.nodes {
		if n != primary {
			wantReplicas = append(wantReplicas, n)
		}
	}
	for _, o := range tp.sentinels {
		if o != s {
			wantSentinels = append(wantSentinels, o)
		}
	}
	if err := tp.checkListed(s, "REPLICAS", wantReplicas); err != nil {
		return err
	}
	return tp.checkListed(s, "SENTINELS", wantSentinels)
}

// checkListed reports nil when SENTINEL <sub> on s lists every node in
// want, none flagged down or disconnected.
func (tp *Topo) checkListed(s *Node, sub string, want []*Node) error {
	var rows []map[string]string
	err := probe(s.Addr(), func(ctx context.Context, c *redis.Client) error {
		cmd := redis.NewMapStringStringSliceCmd(ctx, "SENTINEL", sub, tp.opts.MasterName)
		_ = c.Process(ctx, cmd)
		var err error
		rows, err = cmd.Result()
		return err
	})
	if err != nil {
		return fmt.Errorf("SENTINEL %s %s: %w", sub, tp.opts.MasterName, err)
	}
	healthy := make(map[string]bool)
	for _, row := range rows {
		flags := row["flags"]
		if !strings.Contains(flags, "s_down") && !strings.Contains(flags, "disconnected") {
			healthy[row["port"]] = true
		}
	}
	for _, n := range want {
		if !healthy[strconv.Itoa(n.Port())] {
			return fmt.Errorf("SENTINEL %s does not list %s as healthy yet (got %d rows: %v)", sub, n, len(rows), rows)
		}
	}
	return nil
}

// masterFlags asks sentinel s for the flags it gives the primary
// (SENTINEL MASTER): "master", or with s_down, o_down,
// failover_in_progress and the like.
func (tp *Topo) masterFlags(s *Node) (string, error) {
	r, err := tp.askSentinel(s, "MASTER")
	if err != nil {
		return "", err
	}
	for i := 0; i+1 < len(r); i += 2 {
		if r[i] == "flags" {
			return r[i+1], nil
		}
	}
	return "", fmt.Errorf("SENTINEL MASTER %s on %s: no flags in %v", tp.opts.MasterName, s, r)
}
