package limiter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinels asks the sentinels where the primary and the replicas are.
type sentinels struct {
	clients []*redis.SentinelClient
	master  string
	timeout time.Duration
	last    atomic.Pointer[known] // the primary's address as last known; nil before any
	// following: a follow loop keeps last fresh; until one runs, primary
	// asks the sentinels itself.
	following atomic.Bool
	answered  atomic.Int64 // how many sentinels answered the last round; -1 before any
	// replicas are the local replicas, whose ROLE names their primary while
	// no sentinel answers and none ever named it.
	replicas []*redis.Client
	conn     *connOptions
	// dialed are the go-redis connections dialPrimary made, by address:
	// closed when the primary moves, so no pooled connection goes on
	// writing to a former primary that still says master.
	mu     sync.Mutex
	dialed map[*trackedConn]string
	// chosen is the replica the replica method named: named again while
	// the sentinels report it healthy.
	chosen atomic.Pointer[string]
	// unlinked is a replica a dial refused (ErrReplicaUnlinked) and when:
	// passed over for unlinkedFor while the sentinels report another.
	unlinked atomic.Pointer[refusal]
}

// refusal is a replica refused at a dial, and when.
type refusal struct {
	addr string
	at   time.Time
}

// unlinkedFor is how long a replica refused at a dial is passed over: a
// sentinel's view of it lags by up to its INFO period, 10 s.
const unlinkedFor = 10 * time.Second

// refused hears of a dial that refused the replica at addr: not linked to
// its primary (a restart the sentinels have not seen yet). The next dial
// picks another, if a sentinel reports one.
func (s *sentinels) refused(addr string) {
	s.unlinked.Store(&refusal{addr: addr, at: time.Now()})
	if c := s.chosen.Load(); c != nil && *c == addr {
		s.chosen.CompareAndSwap(c, nil)
	}
}

// known is where the primary is as last known: named by a sentinel, or,
// while none ever answered, by a local replica's ROLE (byReplica). Every
// connection to it still checks ROLE.
type known struct {
	addr      string
	byReplica bool
}

// trackedConn is a connection dialPrimary made; it forgets itself when
// closed.
type trackedConn struct {
	net.Conn
	s    *sentinels
	once sync.Once
}

// Close forgets the connection, then closes it.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.dialed, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// moved closes the connections dialPrimary made to any address but addr.
func (s *sentinels) moved(addr string) {
	s.mu.Lock()
	var stale []*trackedConn
	for c, a := range s.dialed {
		if a != addr {
			stale = append(stale, c)
		}
	}
	s.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
}

func newSentinels(o RedisOptions, tlsConf *tls.Config) *sentinels {
	s := &sentinels{master: o.MasterName, timeout: o.DialTimeout, dialed: map[*trackedConn]string{},
		conn: &connOptions{username: o.Username, password: o.password, db: o.DB, tls: tlsConf, dialTimeout: o.DialTimeout}}
	for _, a := range o.LocalReplicas {
		s.replicas = append(s.replicas, redis.NewClient(s.conn.goRedisOptions(a)))
	}
	for _, a := range o.Addrs {
		s.clients = append(s.clients, redis.NewSentinelClient(&redis.Options{
			Addr: a, Username: o.SentinelUsername, Password: o.SentinelPassword, TLSConfig: tlsConf,
			CredentialsProvider: func() (string, string) { return o.SentinelUsername, o.sentinelPassword() },
			DialTimeout:         o.DialTimeout, ReadTimeout: o.DialTimeout, WriteTimeout: o.DialTimeout,
			MaxRetries: -1, PoolSize: 2, DialerRetries: 1,
		}))
	}
	s.answered.Store(-1)
	return s
}

// dialPrimary is a go-redis Dialer that dials the primary the sentinels
// name (or, with none answering, the last known; see primary): the admin
// API's and the recorder's clients follow the decision path's view.
func (s *sentinels) dialPrimary(ctx context.Context, network, _ string) (net.Conn, error) {
	addr, err := s.primary()
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: s.conn.dialTimeout}
	var nc net.Conn
	if s.conn.tls == nil {
		nc, err = d.DialContext(ctx, network, addr)
	} else {
		nc, err = (&tls.Dialer{NetDialer: d, Config: s.conn.tls}).DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	c := &trackedConn{Conn: nc, s: s}
	s.mu.Lock()
	s.dialed[c] = addr
	s.mu.Unlock()
	return c, nil
}

// followEvery is how often the sentinels are asked where the primary is:
// a failover is followed within it.
const followEvery = 250 * time.Millisecond

// primary is the primary's address as last known. While a follow loop
// keeps it fresh, that is all: a dial never waits on the sentinels. The
// first time, or with no follow loop, the sentinels are asked. With no
// sentinel answering, the last address a sentinel named is used (every
// connection to it still checks ROLE), and while none ever named one, the
// primary a local replica replicates from, which is kept as the last
// known: the follow loop asks the replicas again while no sentinel answers,
// and takes the sentinels' word once one does.
func (s *sentinels) primary() (string, error) {
	k := s.last.Load()
	if k != nil && s.following.Load() {
		return k.addr, nil
	}
	r := s.round()
	if r.addr != "" {
		s.last.Store(&known{addr: r.addr})
		return r.addr, nil
	}
	if k != nil && !k.byReplica {
		return k.addr, nil
	}
	if addr, err := s.primaryOfReplicas(); err == nil {
		if k == nil || k.addr != addr {
			s.last.CompareAndSwap(k, &known{addr: addr, byReplica: true}) // a sentinel's word, come meanwhile, stands
		}
		return addr, nil
	}
	if k != nil {
		return k.addr, nil
	}
	return "", fmt.Errorf("no sentinel gives the primary of %s: %w", s.master, r.err)
}

// follow asks every sentinel about the primary every followEvery until
// quit closes. It makes p's lanes dial again when the address changes, and
// keeps p's Sentinel doubt (see roundResult). With no sentinel answering,
// the last address a sentinel named stays in use, checked by ROLE, and the
// doubt stays as it was last known; while none ever named one, the local
// replicas are asked again, and the primary their ROLE names is followed.
func (s *sentinels) follow(quit <-chan struct{}, p *pipe) {
	s.following.Store(true)
	defer s.following.Store(false)
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		r := s.round()
		if r.addr != "" {
			s.changed(p, s.last.Swap(&known{addr: r.addr}), r.addr)
			p.health.doubt.Store(r.doubt)
		} else if k := s.last.Load(); k == nil || k.byReplica {
			if addr, err := s.primaryOfReplicas(); err == nil && (k == nil || k.addr != addr) &&
				s.last.CompareAndSwap(k, &known{addr: addr, byReplica: true}) {
				s.changed(p, k, addr)
			}
		}
		select {
		case <-quit:
			return
		case <-t.C:
		}
	}
}

// changed makes p's lanes dial again, and closes the connections
// dialPrimary made elsewhere, when the primary's address was old and is
// now addr.
func (s *sentinels) changed(p *pipe, old *known, addr string) {
	if old != nil && old.addr == addr {
		return
	}
	p.gen.Add(1)
	if old != nil {
		// A failover: replication is asynchronous, so the new primary may
		// lack the old one's last records, as a restart loses them.
		p.health.lost()
	}
	s.moved(addr)
}

// roundResult is what one round of asking every sentinel found.
type roundResult struct {
	answered int
	// addr is the primary as the answering sentinel with the newest
	// configuration epoch names it; "" if none answered.
	addr string
	// doubt: a sentinel reports the primary o_down or failing over, or a
	// majority of all the sentinels report it s_down (one sentinel's own
	// s_down is its view alone).
	doubt bool
	err   error
}

// round asks every sentinel at once for the primary (SENTINEL MASTER).
func (s *sentinels) round() roundResult {
	type answer struct {
		m   map[string]string
		err error
	}
	answers := make([]answer, len(s.clients))
	var wg sync.WaitGroup
	for i, sc := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			answers[i].m, answers[i].err = sc.Master(ctx, s.master).Result()
		}()
	}
	wg.Wait()
	var r roundResult
	var errs []error
	var got []map[string]string
	for _, a := range answers {
		if a.err != nil || a.m["ip"] == "" {
			errs = append(errs, a.err)
			continue
		}
		got = append(got, a.m)
	}
	r.answered = len(got)
	r.addr, r.doubt = tally(got, len(s.clients))
	r.err = errors.Join(errs...)
	s.answered.Store(int64(r.answered))
	sentinelsReachable.Set(float64(r.answered))
	return r
}

// tally reads the answers of the sentinels that answered (SENTINEL
// MASTER), of all configured: the primary is the one the answer with the
// newest config-epoch names; doubt is an o_down or failover in progress
// anywhere, or s_down from a majority of all the sentinels.
func tally(answers []map[string]string, configured int) (addr string, doubt bool) {
	epoch, sdown := int64(-1), 0
	for _, m := range answers {
		e, err := strconv.ParseInt(m["config-epoch"], 10, 64)
		if err != nil {
			e = 0
		}
		if addr == "" || e > epoch {
			epoch, addr = e, net.JoinHostPort(m["ip"], m["port"])
		}
		for _, f := range strings.Split(m["flags"], ",") {
			switch f {
			case "o_down", "failover_in_progress":
				doubt = true
			case "s_down":
				sdown++
			}
		}
	}
	return addr, doubt || sdown > configured/2
}

// primaryOfReplicas asks the local replicas' ROLE for their primary.
func (s *sentinels) primaryOfReplicas() (string, error) {
	for _, c := range s.replicas {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		role, err := c.Do(ctx, "ROLE").Slice()
		cancel()
		if err != nil || len(role) < 3 || role[0] != "slave" {
			continue
		}
		host, _ := role[1].(string)
		port, _ := role[2].(int64)
		if host != "" && port > 0 {
			return net.JoinHostPort(host, strconv.FormatInt(port, 10)), nil
		}
	}
	return "", errors.New("no local replica names its primary")
}

// replica is a replica a sentinel reports as up and linked: the one it
// named before while it is, else one at random. Every connection of the
// decisions' replica pipe so reads one replica (a lane that dials another
// has the others dial again: lane.dial): replica consistency forgets a
// pending admission once a read shows it, which a replica further behind
// would not.
func (s *sentinels) replica() (string, error) {
	for _, sc := range s.clients {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		rs, err := sc.Replicas(ctx, s.master).Result()
		cancel()
		if err != nil {
			continue
		}
		up := upReplicas(rs)
		if u := s.unlinked.Load(); u != nil && time.Since(u.at) < unlinkedFor && len(up) > 1 {
			up = slices.DeleteFunc(up, func(a string) bool { return a == u.addr })
		}
		if len(up) == 0 {
			continue
		}
		c := s.chosen.Load()
		if c != nil && slices.Contains(up, *c) {
			return *c, nil
		}
		a := up[rand.IntN(len(up))]
		if !s.chosen.CompareAndSwap(c, &a) { // another lane's dial chose meanwhile
			if w := s.chosen.Load(); w != nil && slices.Contains(up, *w) {
				return *w, nil
			}
		}
		return a, nil
	}
	return "", fmt.Errorf("no sentinel reports a healthy replica of %s", s.master)
}

// upReplicas are the addresses of the replicas in a sentinel's SENTINEL
// REPLICAS answer that are up and linked to their primary.
func upReplicas(rs []map[string]string) []string {
	var up []string
	for _, r := range rs {
		if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") &&
			r["master-link-status"] == "ok" {
			up = append(up, r["ip"]+":"+r["port"])
		}
	}
	return up
}

func (s *sentinels) close() {
	for _, sc := range s.clients {
		sc.Close()
	}
	for _, c := range s.replicas {
		c.Close()
	}
}
