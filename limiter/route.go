package limiter

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// router picks the pipe that carries a tenant's decisions: one node for
// standalone and Sentinel, the slot's node for Cluster.
type router interface {
	pipeFor(tenant string) (*pipe, error)
	// shard names the node that decides tenant ("" where one node decides
	// all), without I/O.
	shard(tenant string) string
	// pipeAt is the pipe of the node at addr, for a Cluster redirect; nil
	// where there are no redirects.
	pipeAt(addr string) *pipe
	// connect dials every pipe known now (see RedisStore.Connect).
	connect(ctx context.Context)
	// failed hears of an error reply or a broken connection on p, which
	// in Cluster can mean the slot moved.
	failed(p *pipe, err error)
	all() []*pipe
	// close closes every pipe and stops what runs beside them.
	close()
}

// fixedRoute is one node, found by addr at every dial.
type fixedRoute struct{ p *pipe }

func (r fixedRoute) pipeFor(string) (*pipe, error) { return r.p, nil }
func (r fixedRoute) failed(*pipe, error)           {}
func (r fixedRoute) shard(string) string           { return "" }
func (r fixedRoute) pipeAt(string) *pipe           { return nil }
func (r fixedRoute) connect(ctx context.Context)   { r.p.connect(ctx) }
func (r fixedRoute) all() []*pipe                  { return []*pipe{r.p} }
func (r fixedRoute) close()                        { r.p.close() }

// newRoutes builds the routers of the primary and of the replica for c's
// topology. It does no I/O.
func newRoutes(c *Clients, cfg pipeConfig) (primary, replica router) {
	o := c.opts
	pcfg, rcfg := cfg, cfg
	pcfg.conn.identify = true // a restart of a primary loses records
	rcfg.replica = true
	rcfg.conn.linked = true // a replica that lost its data serves none (see connOptions)
	// A replica silent for its share of the budget fails what waits for
	// it at once (see replicaShare): the primary decides meanwhile.
	rcfg.budget = max(cfg.budget/replicaShare, time.Millisecond)
	switch o.Mode {
	case ModeSentinel:
		pcfg.conn.primary = true // Sentinel can name a stale primary
		s := c.sentinels
		replicaAddr := s.replica
		rcfg.unlinked = s.refused
		if len(o.LocalReplicas) > 0 {
			replicaAddr, rcfg.unlinked = fixedAddr(o.LocalReplicas[0]), nil
		}
		primary := newPipe(&pcfg, s.primary)
		primary.follow = s.follow
		return fixedRoute{primary}, fixedRoute{newPipe(&rcfg, replicaAddr)}
	case ModeCluster:
		rcfg.conn.readOnly = true
		return newClusterRoute(c.Primary.(*redis.ClusterClient), &pcfg, false),
			newClusterRoute(c.Replica.(*redis.ClusterClient), &rcfg, true)
	default:
		p := fixedRoute{newPipe(&pcfg, fixedAddr(o.Addrs[0]))}
		return p, p
	}
}

func fixedAddr(a string) func() (string, error) {
	return func() (string, error) { return a, nil }
}
