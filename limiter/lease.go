package limiter

import (
	"context"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
)

// A concurrency limit is a Lease rule: a sliding log, decided by the same
// script as every other rule, whose window is the lease's longest life.
// Its set holds one member per request in flight; Release takes the
// member out when the response ends. A gateway that dies never releases
// its leases: they leave the window, as any record does.

// releaseQueue bounds the leases waiting to be given back, and apart
// the releases waiting to be sent again. A release that finds the queue
// full is dropped and counted; one that fails with no room left to wait
// is given up: its lease expires instead.
const releaseQueue = 8192

// releaseBatch is the most releases one pipeline carries.
const releaseBatch = 256

// releaseTimeout bounds one batch of releases on the primary.
const releaseTimeout = time.Second

// A release the primary refused or did not answer (NOREPLICAS, a
// failover) is sent again releaseRetry later, the wait doubling after
// each round that still fails, up to releaseRetryMax.
const (
	releaseRetry    = 250 * time.Millisecond
	releaseRetryMax = 2 * time.Second
)

// release is one lease to give back: the Seq of the decision that took it
// in the Lease rule of that name counted under tag (the tenant, or the
// rule's scope: ruleTag). Past until, the lease has left its window: a
// release that still fails is given up.
type release struct {
	tag   string
	rule  string
	seq   uint64
	until time.Time
}

var (
	leasesReleased = metrics.NewCounter(`l1gw_lease_releases_total{result="released"}`)
	leasesExpired  = metrics.NewCounter(`l1gw_lease_releases_total{result="expired"}`)
	leasesDropped  = metrics.NewCounter(`l1gw_lease_releases_total{result="dropped"}`)
	leasesFailed   = metrics.NewCounter(`l1gw_lease_releases_total{result="failed"}`)
)

// HasLease reports whether rules hold a Lease rule: a request under a
// concurrency limit.
func HasLease(rules []Rule) bool {
	for i := range rules {
		if rules[i].Lease {
			return true
		}
	}
	return false
}

// Release gives back the lease that decision seq took in tenant's Lease
// rule r. It never waits: the release is queued and written to the
// primary in a pipeline with others (Run writes them, and sends again
// those that fail until r's Window from now has passed).
func (s *RedisStore) Release(tenant string, r Rule, seq uint64) {
	// The real clock, not s.now: the window is counted by Redis' clock.
	rel := release{tag: ruleTag(tenant, r), rule: r.Name, seq: seq, until: time.Now().Add(r.Window)}
	select {
	case s.releases <- rel:
	default:
		leasesDropped.Inc()
	}
}

// releaseLate gives back the leases of a decision that its script
// admitted after the watchdog gave up on it: the caller went on without
// them (a local lease, or a refusal), so nothing else would, and they
// held the tenant's slots until they left the window. A decision given
// up whose reply never comes (its connection closed) still leaves them
// to the window.
func (s *RedisStore) releaseLate(o *op) {
	for _, r := range o.req.Rules {
		if r.Lease {
			s.Release(o.req.Tenant, r, o.seq)
		}
	}
}

// runReleases writes queued releases, and sends again those that failed,
// until ctx ends; then it writes what is queued, once, and gives up the
// rest.
func (s *RedisStore) runReleases(ctx context.Context) {
	releaseLoop(ctx, s.releases, s.writeReleases)
}

// releaseLoop is runReleases over queue and write, which sends a batch
// and returns the releases that failed. A round of retries goes one batch
// at a time, and after each a batch of what was queued meanwhile goes
// out: a release waits for a batch of retries, not for the whole round
// (up to releaseQueue / releaseBatch batches of releaseTimeout each while
// Redis does not answer for some of them), and retries still go out
// under a steady stream of releases.
func releaseLoop(ctx context.Context, queue <-chan release, write func(context.Context, []release) []release) {
	batch := make([]release, 0, releaseBatch)
	var r retries
	send := func(v release) {
		b := fillBatch(queue, append(batch[:0], v), releaseBatch)
		r.add(write(context.Background(), b), time.Now())
	}
	for {
		select {
		case v := <-queue:
			send(v)
		case <-r.due:
			r.start()
		case <-r.next():
			r.step(ctx, write)
			select {
			case v := <-queue:
				send(v)
			default:
			}
		case <-ctx.Done():
			r.giveUp()
			for {
				b := fillBatch(queue, batch[:0], releaseBatch)
				if len(b) == 0 {
					return
				}
				leasesFailed.Add(len(write(context.Background(), b)))
			}
		}
		r.arm()
	}
}

// retries are the releases waiting to be sent again. Only releaseLoop
// uses them.
type retries struct {
	held []release
	// todo is the round under way: the releases it has yet to send; a
	// round is under way while it holds any. failed: one of its batches
	// failed.
	todo   []release
	failed bool
	wait   time.Duration    // before the next round; 0: releaseRetry
	due    <-chan time.Time // nil when no round is set
}

// add keeps failed for another round, but gives up, counted failed, a
// release past its until or one finding releaseQueue held already (in
// the round under way too).
func (r *retries) add(failed []release, now time.Time) {
	for _, rel := range failed {
		if !now.Before(rel.until) || len(r.held)+len(r.todo) >= releaseQueue {
			leasesFailed.Inc()
			continue
		}
		r.held = append(r.held, rel)
	}
}

// start begins a round: every held release is to be sent again, a
// batch at each step.
func (r *retries) start() {
	r.due = nil
	r.todo, r.held, r.failed = r.held, nil, false
}

// alwaysReady is a channel always ready: next's while a round is under way.
var alwaysReady = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// next is ready while a round is under way, for its next step; nil (never
// ready) otherwise.
func (r *retries) next() <-chan struct{} {
	if len(r.todo) == 0 {
		return nil
	}
	return alwaysReady
}

// step sends the round's next batch again; those that fail are held for
// the next round. Once ctx has ended it sends nothing: the rest is held,
// to be given up. When the round is over and some of it still failed, the
// next round waits twice as long, up to releaseRetryMax.
func (r *retries) step(ctx context.Context, write func(context.Context, []release) []release) {
	if ctx.Err() != nil {
		todo := r.todo
		r.todo = nil
		r.add(todo, time.Now()) // not sent: the gateway stops
		return
	}
	n := min(len(r.todo), releaseBatch)
	b := r.todo[:n]
	r.todo = r.todo[n:]
	failed := write(ctx, b)
	r.failed = r.failed || len(failed) > 0
	r.add(failed, time.Now())
	if len(r.todo) == 0 {
		r.todo = nil
		if r.failed {
			r.wait = min(2*max(r.wait, releaseRetry), releaseRetryMax)
		}
	}
}

// arm sets the next round if releases are held and none is under way,
// and forgets the backoff once none is held.
func (r *retries) arm() {
	switch {
	case len(r.todo) > 0:
	case len(r.held) == 0:
		r.due, r.wait = nil, 0
	case r.due == nil:
		r.due = time.After(max(r.wait, releaseRetry))
	}
}

// giveUp counts every held release failed, and the round's unsent: the
// gateway stops.
func (r *retries) giveUp() {
	leasesFailed.Add(len(r.held) + len(r.todo))
	r.held, r.todo = nil, nil
}

// writeReleases sends a batch as one pipeline of ZREM on the primary (in
// Cluster, go-redis splits it by slot), within ctx and releaseTimeout. It
// returns the releases that failed: ZREM is idempotent, so each may be
// sent again.
func (s *RedisStore) writeReleases(ctx context.Context, batch []release) (failed []release) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	p := s.clients.Primary.Pipeline()
	cmds := make([]*redis.IntCmd, len(batch))
	for i, rel := range batch {
		cmds[i] = p.ZRem(ctx, LeaseKey(s.prefix, rel.tag, rel.rule), s.memberOf(rel.seq)+":1")
	}
	p.Exec(ctx) //nolint:errcheck // each command's error is read below
	for i, c := range cmds {
		switch n, err := c.Result(); {
		case err != nil:
			failed = append(failed, batch[i])
		case n == 0:
			leasesExpired.Inc()
		default:
			leasesReleased.Inc()
		}
	}
	return failed
}

// memberOf is the member base of decision seq: the instance and the
// sequence number, as a string.
func (s *RedisStore) memberOf(seq uint64) string {
	var buf [40]byte
	b := append(buf[:0], s.instance...)
	b = append(b, ':')
	return string(strconv.AppendUint(b, seq, 36))
}

// leaseDenied reports whether a Lease rule denied d.
func leaseDenied(rules []Rule, d *Decision) bool {
	for i := range rules {
		if rules[i].Lease && d.Rules[i].Denied() {
			return true
		}
	}
	return false
}

// leaseOnly reports whether only Lease rules denied d. A replica shows a
// lease given back on the primary a moment ago as still held, so its word
// on a concurrency limit is not the truth.
func leaseOnly(rules []Rule, d *Decision) bool {
	for i := range rules {
		if !rules[i].Lease && !rules[i].Shadow() && d.Rules[i].Denied() {
			return false
		}
	}
	return true
}
