package registry

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
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
	notify chan int64
	// current is the version applied (-1: none yet); confirmed when the
	// copy was last found current (Unix ns; 0: never).
	current, confirmed atomic.Int64
}

// NewSyncer returns a Syncer of reg. It does no I/O.
func NewSyncer(reg *Registry, o SyncOptions) *Syncer {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{reg: reg, o: o, notify: make(chan int64, 1)}
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

// Version is the registry version in force; -1 before the first read.
func (s *Syncer) Version() int64 { return s.current.Load() }

// readTimeout bounds one check or read of the registry.
const readTimeout = 5 * time.Second

// Sync brings the copy up to date now: a read when the version differs
// from the one in force. want, if > 0, is a version known to exist (from a
// notification): a replica behind it is waited for briefly, then the
// primary is read.
func (s *Syncer) Sync(ctx context.Context, want int64) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	src := s.reg.replica
	v, err := version(ctx, src, s.reg.keys.version)
	for i := 0; err == nil && v < want && i < 10; i++ {
		time.Sleep(20 * time.Millisecond) // replication is usually this fast
		v, err = version(ctx, src, s.reg.keys.version)
	}
	if err == nil && v < want {
		src = s.reg.primary
		v, err = version(ctx, src, s.reg.keys.version)
	}
	if err != nil {
		return err
	}
	if v != s.current.Load() {
		reg, err := s.reg.load(ctx, src)
		if err != nil {
			return err
		}
		reg.Use = s.o.Use
		s.o.Apply(reg)
		s.current.Store(reg.Version)
		snapshotVersion.Set(float64(reg.Version))
	}
	s.confirmed.Store(time.Now().UnixNano())
	return nil
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
	sync := func(want int64) {
		err := s.Sync(ctx, want)
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
			sync(0)
		case v := <-s.notify:
			sync(v)
		case <-flush.C:
			s.flush(ctx)
		case <-gauge.C:
			snapshotAge.Set(s.Age().Seconds())
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
	if err := s.reg.FlushLastUsed(ctx, s.o.Use.Changed()); err != nil {
		s.o.Log.Warn("tenant registry: keys' last uses not written; they are approximate", "err", err.Error())
	}
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
			var rerr redis.Error
			if errors.As(err, &rerr) {
				s.o.Log.Warn("tenant registry: notifications refused; changes arrive by the poll, every tenants.refresh",
					"err", err.Error(), "refresh", s.o.Refresh.String())
				return
			}
			sleep(ctx, time.Second)
			continue
		}
		s.send(0)
		for {
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil {
				break
			}
			v, _ := strconv.ParseInt(msg.Payload, 10, 64)
			s.send(v)
		}
		ps.Close()
		sleep(ctx, 100*time.Millisecond)
	}
}

// send passes a notification to Run without waiting: one pending is enough
// (a sync reads the latest version), but the highest wanted is kept.
func (s *Syncer) send(v int64) {
	select {
	case s.notify <- v:
	default:
		select {
		case old := <-s.notify:
			s.notify <- max(old, v)
		default:
			s.notify <- v
		}
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
