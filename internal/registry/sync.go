package registry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/tenants"
)

// The gauges of the registry copy (one gateway per process in production):
// -1 until the registry is first read.
var (
	snapshotAge     = metrics.NewGauge(`l1gw_tenants_snapshot_age_seconds`, nil)
	snapshotVersion = metrics.NewGauge(`l1gw_tenants_registry_version`, nil)
)

// SyncOptions configure a Syncer.
type SyncOptions struct {
	// Refresh is how often the version counter is polled
	// (tenants.refresh): the bound on how stale the copy is when
	// notifications do not arrive.
	Refresh time.Duration
	// FlushInterval is how often keys' last uses are written to Redis.
	FlushInterval time.Duration
	// Apply receives each new version of the registry read; it builds and
	// swaps the snapshot.
	Apply func(*tenants.Registry)
	// Use gathers keys' last uses, flushed every FlushInterval.
	Use *tenants.KeyUse
	Log *slog.Logger
}

// Syncer keeps a gateway's copy of the registry current: it reads the
// whole registry from the replica when its version counter changes,
// checked on each notification and every Refresh. Between, and while Redis
// does not answer, the last copy serves.
type Syncer struct {
	reg    *Registry
	o      SyncOptions
	notify chan struct{}
	// current is the version applied (-1: none yet); confirmed when the
	// copy was last found current (Unix ns; 0: never).
	current, confirmed atomic.Int64
}

// NewSyncer returns a Syncer of reg. It does no I/O.
func NewSyncer(reg *Registry, o SyncOptions) *Syncer {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{reg: reg, o: o, notify: make(chan struct{}, 1)}
	s.current.Store(-1)
	snapshotAge.Set(-1) // never read yet: not "fresh"
	snapshotVersion.Set(-1)
	return s
}

// Age is how long ago the copy was last found current; negative before it
// ever was.
func (s *Syncer) Age() time.Duration {
	c := s.confirmed.Load()
	if c == 0 {
		return -1
	}
	return time.Since(time.Unix(0, c))
}

// ageSeconds is an Age as l1gw_tenants_snapshot_age_seconds shows it: -1
// before the copy was ever found current (Age's -1 ns would show as 0 s,
// fresh).
func ageSeconds(age time.Duration) float64 {
	if age < 0 {
		return -1
	}
	return age.Seconds()
}

// Version is the registry version in force; -1 before the first read.
func (s *Syncer) Version() int64 { return s.current.Load() }

// readTimeout bounds one check or read of the registry.
const readTimeout = 5 * time.Second

// Sync brings the copy up to date now. The primary's version says what
// is current; the registry is read from one replica that has caught up
// with it (waited for briefly), else from the primary. A version lower
// than the one in force is applied only when the primary says so (its
// data was reset); a replica behind is never read. With the primary
// silent, a newer version on the replica is applied, but the copy is not
// called current: its age goes on growing.
func (s *Syncer) Sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	cur := s.current.Load()
	primary, err := pin(ctx, s.reg.primary, s.reg.keys.version, false)
	var pv int64
	if err == nil {
		pv, err = version(ctx, primary, s.reg.keys.version)
	}
	if err != nil {
		return s.replicaOnly(ctx, cur, err)
	}
	if pv != cur {
		src := primary
		if pv > cur {
			src = s.caughtUp(ctx, pv, primary)
		}
		reg, err := s.reg.load(ctx, src)
		if err != nil {
			return err
		}
		if pv < cur || reg.Version > cur { // a reset, or newer: never older from a replica
			s.apply(reg)
		}
	}
	if s.current.Load() >= pv {
		s.confirmed.Store(time.Now().UnixNano())
	}
	return nil
}

// caughtUp returns a replica whose version is at least v, waiting up to
// 200 ms for one; else the primary.
func (s *Syncer) caughtUp(ctx context.Context, v int64, primary redis.UniversalClient) redis.UniversalClient {
	replica, err := pin(ctx, s.reg.replica, s.reg.keys.version, true)
	if err != nil {
		return primary
	}
	for range 10 {
		if rv, err := version(ctx, replica, s.reg.keys.version); err == nil && rv >= v {
			return replica
		}
		time.Sleep(20 * time.Millisecond) // replication is usually this fast
	}
	return primary
}

// replicaOnly applies a newer version from a replica while the primary
// does not answer (perr); the copy is not confirmed current.
func (s *Syncer) replicaOnly(ctx context.Context, cur int64, perr error) error {
	replica, err := pin(ctx, s.reg.replica, s.reg.keys.version, true)
	if err != nil {
		return perr
	}
	if rv, err := version(ctx, replica, s.reg.keys.version); err == nil && rv > cur {
		if reg, err := s.reg.load(ctx, replica); err == nil && reg.Version > cur {
			s.apply(reg)
		}
	}
	return fmt.Errorf("the primary does not answer: %w", perr)
}

func (s *Syncer) apply(reg *tenants.Registry) {
	reg.Use = s.o.Use
	s.o.Apply(reg)
	s.current.Store(reg.Version)
	snapshotVersion.Set(float64(reg.Version))
}

// pin returns a client of one node of c (the primary of key's slot, or
// one of its replicas when readOnly): the reads of one load must see one
// node's data, and a client over several replicas picks one per command.
func pin(ctx context.Context, c redis.UniversalClient, key string, readOnly bool) (redis.UniversalClient, error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return c, nil // one node
	}
	if readOnly {
		return cc.SlaveForKey(ctx, key)
	}
	return cc.MasterForKey(ctx, key)
}

// Run syncs on every notification and every Refresh, and flushes keys'
// last uses every FlushInterval, until ctx ends; then it flushes once
// more.
func (s *Syncer) Run(ctx context.Context) {
	go s.subscribe(ctx)
	poll := time.NewTicker(s.o.Refresh)
	defer poll.Stop()
	flush := time.NewTicker(s.o.FlushInterval)
	defer flush.Stop()
	gauge := time.NewTicker(time.Second)
	defer gauge.Stop()
	var failing bool
	sync := func() {
		err := s.Sync(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.o.Log.Warn("tenant registry: cannot read it; the last copy serves", "err", err.Error(), "version", s.Version())
		case err == nil && failing:
			s.o.Log.Info("tenant registry: read again", "version", s.Version())
		}
		failing = err != nil
	}
	for {
		select {
		case <-ctx.Done():
			s.flush(context.Background())
			return
		case <-poll.C:
			sync()
		case <-s.notify:
			sync()
		case <-flush.C:
			s.flush(ctx)
		case <-gauge.C:
			snapshotAge.Set(ageSeconds(s.Age()))
		}
	}
}

// flush writes the keys' last uses gathered since the last flush.
func (s *Syncer) flush(ctx context.Context) {
	if s.o.Use == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	used := s.o.Use.Changed()
	if err := s.reg.FlushLastUsed(ctx, used); err != nil {
		s.o.Log.Warn("tenant registry: keys' last uses not written; the next flush tries again", "err", err.Error())
		return
	}
	s.o.Use.Flushed(used)
}

// subscribe forwards the registry's notifications to Run, resubscribing
// after a lost connection (and syncing then: a notification may have been
// missed). A subscription refused (an ACL without the channel) leaves the
// poll alone.
func (s *Syncer) subscribe(ctx context.Context) {
	for ctx.Err() == nil {
		ps := s.reg.replica.Subscribe(ctx, s.reg.keys.changed)
		if _, err := ps.Receive(ctx); err != nil {
			ps.Close()
			if strings.HasPrefix(err.Error(), "NOPERM") {
				s.o.Log.Warn("tenant registry: notifications refused; changes arrive by the poll, every tenants.refresh",
					"err", err.Error(), "refresh", s.o.Refresh.String())
				return
			}
			sleep(ctx, time.Second)
			continue
		}
		s.send()
		for {
			if _, err := ps.ReceiveMessage(ctx); err != nil {
				break
			}
			s.send()
		}
		ps.Close()
		sleep(ctx, 100*time.Millisecond)
	}
}

// send passes a notification to Run without waiting: one pending is
// enough, since a sync reads the latest version.
func (s *Syncer) send() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
