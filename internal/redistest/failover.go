package redistest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// failoverCommandTimeout bounds the retries of SENTINEL FAILOVER, which
// answers -NOGOODSLAVE or -INPROG while the sentinel is not ready for it.
const failoverCommandTimeout = 10 * time.Second

// demoteTimeout bounds WaitReplicas per node: the sentinels demote a former
// primary about 10s after a failover.
const demoteTimeout = 30 * time.Second

// Failover asks one sentinel for a manual failover (SENTINEL FAILOVER) and
// waits until every reachable sentinel names another primary whose ROLE is
// master; it returns the new primary (about 1-2s). The old primary keeps
// ROLE master until the sentinels demote it, about 10s later with Redis
// 7.0: the split-brain window. Call WaitReplicas to wait that out.
func (tp *Topo) Failover(t TB) *Node {
	t.Helper()
	var old *Node
	err := poll(startTimeout, func() error {
		var err error
		old, err = tp.currentPrimary(true)
		return err
	})
	if err != nil {
		t.Fatalf("redistest: failover of %s: find the current primary: %v", tp.opts.MasterName, err)
	}
	ss := tp.reachableSentinels()
	if len(ss) == 0 {
		t.Fatalf("redistest: failover of %s: no sentinel is running", tp.opts.MasterName)
	}
	err = poll(failoverCommandTimeout, func() error {
		return probe(ss[0].Addr(), func(ctx context.Context, c *redis.Client) error {
			err := c.Do(ctx, "SENTINEL", "FAILOVER", tp.opts.MasterName).Err()
			if err != nil && strings.HasPrefix(err.Error(), "INPROG") {
				return nil // a failover is already under way; wait for it
			}
			return err
		})
	})
	if err != nil {
		t.Fatalf("redistest: SENTINEL FAILOVER %s on %s (old primary %s): %v", tp.opts.MasterName, ss[0], old, err)
	}
	return tp.WaitPrimary(t, old.Addr(), failoverTimeout)
}

// WaitPrimary waits up to timeout until every reachable sentinel names the
// same primary, at an address other than notAddr, and that node's ROLE is
// master. Use it after killing or stalling the primary; it returns the new
// primary.
func (tp *Topo) WaitPrimary(t TB, notAddr string, timeout time.Duration) *Node {
	t.Helper()
	var p *Node
	err := poll(timeout, func() error {
		var err error
		if p, err = tp.currentPrimary(true); err != nil {
			return err
		}
		if p.Addr() == notAddr {
			return fmt.Errorf("sentinels still name %s", p)
		}
		r, err := role(p.Addr())
		if err != nil {
			return err
		}
		if r != "master" {
			return fmt.Errorf("sentinels name %s but its ROLE is %s", p, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: waiting %v for the sentinels of %s to agree on a primary other than %s with ROLE master: %v",
			timeout, tp.opts.MasterName, notAddr, err)
	}
	return p
}

// WaitSettled waits until no reachable sentinel reports the primary down
// (s_down, o_down) or a failover in progress, then for the replicas
// (WaitReplicas): healthy as a gateway judges a Sentinel primary. A
// primary back on its port before the sentinels failed it over has its
// replicas at once, while the sentinels may still report it down, or go
// on to replace it.
func (tp *Topo) WaitSettled(t TB) {
	t.Helper()
	err := poll(demoteTimeout, func() error {
		for _, s := range tp.reachableSentinels() {
			flags, err := tp.masterFlags(s)
			if err != nil {
				return err
			}
			if flags != "master" {
				return fmt.Errorf("%s flags the primary %s", s, flags)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: wait for the sentinels of %s to settle: %v", tp.opts.MasterName, err)
	}
	tp.WaitReplicas(t)
}

// WaitReplicas waits until every running, unstalled data node other than
// the primary is a replica of the primary with its link up, giving each up
// to 30s (a demoted primary takes about 10s).
func (tp *Topo) WaitReplicas(t TB) {
	t.Helper()
	// The primary is asked again on every poll: a failover may end while
	// the replicas are being waited for (a primary restarted during one).
	err := poll(demoteTimeout, func() error {
		p, err := tp.currentPrimary(true)
		if err != nil {
			return err
		}
		for _, n := range tp.nodes {
			if n == p || !n.Running() || n.Stalled() {
				continue
			}
			if err := checkReplicaOf(n.Addr(), p.Port()); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: wait for the replicas of %s: %v", tp.opts.MasterName, err)
	}
}
