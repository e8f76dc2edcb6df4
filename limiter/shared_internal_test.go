package limiter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/l1gw/l1gw/internal/redistest"
)

// TestSharedCallDecidesEachAsAlone: the first sends of one sliding log in
// a batch share one call of decide.lua, and each is answered as it would
// be alone, one call after another: the same admissions and remaining,
// and resets and retries that differ only by the time between the calls.
// The log holds members spaced 10 s apart, so a retry read from the wrong
// rank is off by 10 s or more. A first send alone takes the shared call's
// path too, so both are checked against calls sent as replays, whose own
// record is not there: they take decide.lua's general path.
func TestSharedCallDecidesEachAsAlone(t *testing.T) {
	t.Parallel()
	c, l := decideFixture(t)
	ctx := context.Background()
	s := time.Second
	cases := []struct {
		name string
		rule Rule
		ago  []time.Duration // the members in the log before, this long before now
		want string          // each decision: 1 admitted, 0 denied
	}{
		{"room for two", Rule{Name: "a", Limit: 5, Window: time.Minute}, []time.Duration{50 * s, 40 * s, 30 * s}, "110000"},
		{"a stale member", Rule{Name: "b", Limit: 3, Window: time.Minute}, []time.Duration{70 * s, 40 * s, 30 * s}, "100"},
		{"waits for a unit of its own call", Rule{Name: "c", Limit: 2, Window: time.Minute, Cost: 2}, nil, "100"},
		{"never fits", Rule{Name: "d", Limit: 1, Window: time.Minute, Cost: 2}, nil, "00"},
		{"waits for the last member before the call", Rule{Name: "h", Limit: 4, Window: time.Minute, Cost: 2}, []time.Duration{10 * s}, "100"},
		{"more units than one ZADD", Rule{Name: "e", Limit: 500, Window: time.Minute, Cost: 150}, []time.Duration{10 * s}, "1110"},
		// Redis' clock stepped back: the units of this call sort first.
		{"members ahead of Redis' clock", Rule{Name: "f", Limit: 3, Window: time.Minute}, []time.Duration{-5 * s, -5 * s}, "100"},
		// The same, with nothing admitted: the unit waited for is one of
		// those ahead, as alone.
		{"denied behind members ahead of Redis' clock", Rule{Name: "g", Limit: 2, Window: time.Minute}, []time.Duration{-5 * s, -5 * s}, "00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, tenant := range []string{"shared", "first", "general"} {
				fill(t, c, ruleKey("p", tenant, tc.rule, 0), tc.ago)
			}
			n := len(tc.want)
			decideAlike(t, c, l, func(tenant string) []*op {
				ops := decideOps(tenant, tc.rule, n)
				for i, o := range ops { // a log counts by Redis' clock alone
					o.now = time.Now().Add(-time.Duration(i) * 10 * s).UnixMicro()
				}
				return ops
			}, tc.want,
				func(name string, ops []*op, replies [][]int64) {
					key := ruleKey("p", name, tc.rule, 0)
					for i, r := range replies {
						recorded := c.ZScore(ctx, key, member(ops[i])+":1").Err() == nil
						if recorded != (r[0] == 1) {
							t.Errorf("decision %d (%s): allowed %d, recorded %v", i, name, r[0], recorded)
						}
					}
					if a, b := c.ZCard(ctx, key).Val(), c.ZCard(ctx, ruleKey("p", "general", tc.rule, 0)).Val(); a != b {
						t.Errorf("the %s log holds %d members, the general path's %d", name, a, b)
					}
					if ttl := c.PTTL(ctx, key).Val(); strings.Contains(tc.want, "1") && (ttl <= 50*s || ttl > time.Minute) {
						t.Errorf("the %s log expires in %v; want in a window", name, ttl)
					}
				})
		})
	}
}

// TestSharedCallDecidesCountersAsAlone: the first sends of a sliding
// window or a fixed rule in a batch share one call as a log's do, and
// each, shared or alone, is answered as decide.lua's general path answers
// it (sent as a replay whose record is not there): the same admissions and
// remaining, resets and retries within the time between the calls, and
// the hash left with the same count, holding the last admitted member.
func TestSharedCallDecidesCountersAsAlone(t *testing.T) {
	t.Parallel()
	c, l := decideFixture(t)
	ctx := context.Background()
	now, period := redisPeriod(t, c)
	window, fixed := testWindow, testFixed
	cases := []struct {
		name string
		rule Rule
		c, p int64  // the hash before: this bucket's count and the one before's
		want string // each decision: 1 admitted, 0 denied
		// apart is how much later by the gateway's clock each decision was
		// made than the next: a fixed rule's has that much more of the
		// period left.
		apart time.Duration
	}{
		{"window: room for two", window("a", 5, 1), 3, 0, "110000", 0},
		// 100 000 weighted by the time left of the bucket: over 5 but in
		// the last 0.2 s of an hour.
		{"window: the bucket before weighs", window("b", 5, 1), 0, 100_000, "000", 0},
		// The gateway's clock plays no part in a window's answers.
		{"window: room for one of cost 2, decided 10 s apart", window("c", 3, 2), 0, 0, "100", 10 * time.Second},
		{"window: never fits", window("d", 1, 2), 0, 0, "00", 0},
		{"fixed: room for two", fixed("e", 5, 1), 3, 0, "110000", 0},
		{"fixed: room for one of cost 2", fixed("f", 3, 2), 0, 0, "100", 0},
		{"fixed: never fits", fixed("g", 1, 2), 0, 0, "00", 0},
		// Each answered by its own time left, not the first's.
		{"fixed: decided 10 s apart", fixed("h", 2, 1), 0, 0, "1100", 10 * time.Second},
		// Past 2^53 a Lua number is not exact, and Redis does not read
		// 1e+17 as an integer: the count must still be exact.
		{"fixed: a cost past 2^53", fixed("i", 1<<62, 1e17+1), 0, 0, "111", 0},
	}
	s := time.Second
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := func(tenant string) string { return ruleKey("p", tenant, tc.rule, period.start) }
			for _, tenant := range []string{"shared", "first", "general"} {
				fields := []any{"c", tc.c}
				if tc.rule.Algorithm == AlgoSlidingWindow {
					fields = append(fields, "p", tc.p, "b", now.UnixMicro()/time.Hour.Microseconds())
				}
				if err := c.HSet(ctx, key(tenant), fields...).Err(); err != nil {
					t.Fatal(err)
				}
			}
			n := len(tc.want)
			ops := func(tenant string) []*op {
				ops := decideOps(tenant, tc.rule, n)
				for i, o := range ops {
					o.periods[0], o.now = period, now.Add(-time.Duration(i)*tc.apart).UnixMicro()
				}
				return ops
			}
			var want []any // the general path's hash, read once it has run
			var wantTTL time.Duration
			decideAlike(t, c, l, ops, tc.want, func(name string, ops []*op, replies [][]int64) {
				if want == nil {
					want = c.HMGet(ctx, key("general"), "c", "p", "b").Val()
					wantTTL = c.PTTL(ctx, key("general")).Val()
				}
				h := c.HMGet(ctx, key(name), "c", "p", "b", "m").Val()
				if fmt.Sprint(h[:3]) != fmt.Sprint(want) {
					t.Errorf("%s: the hash holds c, p, b %v; the general path's %v", name, h[:3], want)
				}
				last := ""
				for i, r := range replies {
					if r[0] == 1 {
						last = member(ops[i])
					}
				}
				if last != "" && h[3] != last {
					t.Errorf("%s: the hash's m is %v; want the last admitted, %s", name, h[3], last)
				}
				// A shared call sets the expiry by the first decision's time
				// left: the others' differ by their time in the queue.
				early := 2 * s
				if name == "shared" && tc.rule.Algorithm == AlgoFixed {
					early += time.Duration(len(ops)-1) * tc.apart
				}
				if ttl := c.PTTL(ctx, key(name)).Val(); ttl-wantTTL < -early || ttl-wantTTL > 2*s {
					t.Errorf("%s: the hash expires in %v; the general path's in %v", name, ttl, wantTTL)
				}
			})
		})
	}
}

// TestSharedCallDecidesSeveralRulesAsAlone: requests with several
// enforced rules, of every algorithm, share a call as one rule's do: each,
// shared or alone, is answered as the general path answers it, rule by
// rule, and every key is left as the general path leaves it. Whichever
// rule is full denies the request in all of them.
func TestSharedCallDecidesSeveralRulesAsAlone(t *testing.T) {
	t.Parallel()
	c, l := decideFixture(t)
	ctx := context.Background()
	now, period := redisPeriod(t, c)
	s := time.Second
	logRule := func(name string, limit, cost int64) Rule {
		return Rule{Name: name, Limit: limit, Cost: cost, Window: time.Minute}
	}
	window, fixed := testWindow, testFixed
	cases := []struct {
		name  string
		rules []Rule
		count int64 // each log holds this many members (10 s apart), each counter counts this much
		want  string
	}{
		{"the log is full first", []Rule{logRule("a", 5, 1), window("b", 10, 1)}, 3, "110000"},
		{"the window is full first", []Rule{logRule("c", 100, 1), window("d", 5, 1)}, 3, "1100"},
		{"the quota is full first", []Rule{logRule("e", 100, 1), window("f", 100, 1), fixed("g", 5, 1)}, 3, "1100"},
		{"cost 2: the log waits for a unit of its own call", []Rule{logRule("h", 4, 2), fixed("i", 100, 2)}, 0, "1100"},
		{"one rule never fits", []Rule{logRule("j", 100, 2), window("k", 1, 2)}, 0, "00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := func(tenant string, r Rule) string { return ruleKey("p", tenant, r, period.start) }
			for _, tenant := range []string{"shared", "first", "general"} {
				for _, r := range tc.rules {
					switch r.Algorithm {
					case AlgoSlidingWindow:
						c.HSet(ctx, key(tenant, r), "c", tc.count, "p", 0, "b", now.UnixMicro()/r.Window.Microseconds())
					case AlgoFixed:
						c.HSet(ctx, key(tenant, r), "c", tc.count)
					default:
						var ago []time.Duration
						for i := range tc.count {
							ago = append(ago, time.Duration(50-10*i)*s)
						}
						fill(t, c, key(tenant, r), ago)
					}
				}
			}
			n := len(tc.want)
			mk := func(tenant string) []*op {
				ops := make([]*op, n)
				for i := range ops {
					o := getOp()
					o.kind, o.prefix, o.instance, o.seq, o.budget = opDecide, "p", "gw-"+tenant, uint64(i+1), time.Second
					o.req = Request{Tenant: tenant, Rules: tc.rules}
					o.now = now.UnixMicro()
					for j, r := range tc.rules {
						if r.Algorithm == AlgoFixed {
							o.periods[j] = period
						}
					}
					ops[i] = o
				}
				return ops
			}
			decideAlike(t, c, l, mk, tc.want, func(name string, ops []*op, replies [][]int64) {
				last := ""
				for i, r := range replies {
					if r[0] == 1 {
						last = member(ops[i])
					}
				}
				for _, r := range tc.rules {
					k, g := key(name, r), key("general", r)
					if r.Algorithm == "" {
						if a, b := c.ZCard(ctx, k).Val(), c.ZCard(ctx, g).Val(); a != b {
							t.Errorf("%s: the log %s holds %d members, the general path's %d", name, r.Name, a, b)
						}
						for i, rep := range replies {
							if recorded := c.ZScore(ctx, k, member(ops[i])+":1").Err() == nil; recorded != (rep[0] == 1) {
								t.Errorf("decision %d (%s): allowed %d, recorded in %s %v", i, name, rep[0], r.Name, recorded)
							}
						}
					} else {
						a, b := c.HMGet(ctx, k, "c", "p", "b", "m").Val(), c.HMGet(ctx, g, "c", "p", "b").Val()
						if fmt.Sprint(a[:3]) != fmt.Sprint(b) {
							t.Errorf("%s: %s holds c, p, b %v; the general path's %v", name, r.Name, a[:3], b)
						}
						if last != "" && a[3] != last {
							t.Errorf("%s: %s's m is %v; want the last admitted, %s", name, r.Name, a[3], last)
						}
					}
					if a, b := c.PTTL(ctx, k).Val(), c.PTTL(ctx, g).Val(); a-b < -2*s || a-b > 2*s {
						t.Errorf("%s: %s expires in %v; the general path's in %v", name, r.Name, a, b)
					}
				}
			})
		})
	}
}

// decideFixture is a redis-server with decide.lua loaded, a client of
// it, and a lane of a pipe to it, which mixes no calls.
func decideFixture(t *testing.T) (*redis.Client, *lane) {
	t.Helper()
	return laneFixture(t, false)
}

// laneFixture is decideFixture, its pipe mixing calls across tenants or
// not (pipeConfig.mixed).
func laneFixture(t *testing.T, mixed bool) (*redis.Client, *lane) {
	t.Helper()
	srv := redistest.Server(t)
	c := srv.Client(t)
	if err := c.ScriptLoad(context.Background(), decideSrc).Err(); err != nil {
		t.Fatal(err)
	}
	cfg := testCfg()
	cfg.mixed = mixed
	p := newPipe(cfg, fixedAddr(srv.Addr()))
	t.Cleanup(p.close)
	return c, p.lanes[0]
}

// redisPeriod is Redis' clock now, and a fixed rule's period as the store
// would place it around it: an hour each way.
func redisPeriod(t *testing.T, c *redis.Client) (time.Time, span) {
	t.Helper()
	now, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now, span{now.Add(-time.Hour).UnixMicro(), now.Add(time.Hour).UnixMicro()}
}

// testWindow is a sliding window of an hour, so that the calls of a case
// fall in one bucket; testFixed a monthly quota.
func testWindow(name string, limit, cost int64) Rule {
	return Rule{Name: name, Limit: limit, Cost: cost, Window: time.Hour, Algorithm: AlgoSlidingWindow}
}

func testFixed(name string, limit, cost int64) Rule {
	return Rule{Name: name, Limit: limit, Cost: cost, Algorithm: AlgoFixed, Period: PeriodMonth}
}

// decideAlike serves the n decisions mk makes for a tenant three ways: in
// one batch (tenant "shared", which must take one call), one by one as
// first sends ("first"), and one by one as replays whose record is not
// there ("general": decide.lua's general path). It checks the first two
// against the third: allowed and remaining alike, reset and retry within
// 2 s of each other, and the admissions as want says (1 admitted, 0
// denied). Then check looks at what each of the two left in Redis, and
// the ops are released.
func decideAlike(t *testing.T, c *redis.Client, l *lane, mk func(tenant string) []*op, want string, check func(name string, ops []*op, replies [][]int64)) {
	t.Helper()
	n := len(want)
	before := commandCalls(t, c, "evalsha")
	shared := mk("shared")
	l.serve(shared)
	if calls := commandCalls(t, c, "evalsha") - before; calls != 1 {
		t.Fatalf("%d decisions of one key in one batch took %d calls; want 1", n, calls)
	}
	first, general := mk("first"), mk("general")
	for i := range n {
		l.serve([]*op{first[i]})
		general[i].replay = true
		l.serve([]*op{general[i]})
	}
	defer func() {
		for i := range n {
			shared[i].release()
			first[i].release()
			general[i].release()
		}
	}()
	replies := func(ops []*op) [][]int64 {
		r := make([][]int64, n)
		for i, o := range ops {
			r[i] = replyOf(t, o)
		}
		return r
	}
	ref := replies(general)
	for _, got := range []struct {
		name string
		ops  []*op
	}{{"shared", shared}, {"first", first}} {
		rs := replies(got.ops)
		admitted := ""
		for i, a := range rs {
			b := ref[i]
			admitted += strconv.FormatInt(a[0], 10)
			if a[0] != b[0] {
				t.Errorf("decision %d: %s allowed %d; general path %d", i, got.name, a[0], b[0])
			}
			for r := 0; 1+3*r < len(a); r++ {
				if a[1+3*r] != b[1+3*r] {
					t.Errorf("decision %d, rule %d: %s remaining %d; general path %d", i, r, got.name, a[1+3*r], b[1+3*r])
				}
				for j, field := range []string{"reset", "retry"} {
					x, y := a[2+3*r+j], b[2+3*r+j]
					if d := time.Duration(x-y) * time.Microsecond; d < -2*time.Second || d > 2*time.Second {
						t.Errorf("decision %d, rule %d: %s %s %v; general path %v", i, r, got.name, field, time.Duration(x)*time.Microsecond, time.Duration(y)*time.Microsecond)
					}
				}
			}
		}
		if admitted != want {
			t.Errorf("%s: admitted %s; want %s", got.name, admitted, want)
		}
		check(got.name, got.ops, rs)
	}
}

// decideOps is n pooled first sends of r for tenant, as the lane holds
// them: settled by serve, then released by the test.
func decideOps(tenant string, r Rule, n int) []*op {
	ops := make([]*op, n)
	for i := range ops {
		o := getOp()
		o.kind, o.prefix, o.instance, o.seq, o.budget = opDecide, "p", "gw-"+tenant, uint64(i+1), time.Second
		o.req = Request{Tenant: tenant, Rules: []Rule{r}}
		ops[i] = o
	}
	return ops
}

// member is o's member base, as decide.lua gets it.
func member(o *op) string {
	return o.instance + ":" + strconv.FormatUint(o.seq, 36)
}

// replyOf waits for o and returns its reply, which must be one rule's.
func replyOf(t *testing.T, o *op) []int64 {
	t.Helper()
	<-o.done
	if want := 1 + 3*len(o.req.Rules); o.err != nil || o.n != want {
		t.Fatalf("decision %s: %v, %d values; want %d", member(o), o.err, o.n, want)
	}
	return o.reply[:o.n]
}

// fill puts one member in key for each of ago, scored that long before
// Redis' now.
func fill(t *testing.T, c *redis.Client, key string, ago []time.Duration) {
	t.Helper()
	ctx := context.Background()
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ago {
		score := float64(now.Add(-d).UnixMicro())
		if err := c.ZAdd(ctx, key, redis.Z{Score: score, Member: fmt.Sprintf("old:%d", i)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// commandCalls is how many times the server has run the command name
// (lower case), by INFO commandstats.
func commandCalls(t testing.TB, c *redis.Client, name string) int64 {
	calls, _ := commandStats(t, c, name)
	return calls
}

// commandStats is how many times the server has run the command name
// (lower case), and the µs it spent on them, by INFO commandstats; zero
// for a command it has not run.
func commandStats(t testing.TB, c *redis.Client, name string) (calls int64, usec float64) {
	t.Helper()
	stats, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(stats, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+name+":"); ok {
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					calls, _ = strconv.ParseInt(v, 10, 64)
				case "usec":
					usec, _ = strconv.ParseFloat(v, 64)
				}
			}
			break
		}
	}
	return calls, usec
}

// TestSharedCallAfterScriptFlush: a shared call answered NOSCRIPT (a
// restart, a failover, SCRIPT FLUSH) is sent again after SCRIPT LOAD,
// and its decisions are recorded once.
func TestSharedCallAfterScriptFlush(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	c := srv.Client(t)
	ctx := context.Background()
	p := newPipe(testCfg(), fixedAddr(srv.Addr()))
	t.Cleanup(p.close)
	l := p.lanes[0]
	r := Rule{Name: "r", Limit: 2, Window: time.Minute}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ops := decideOps("acme", r, 3)
	l.serve(ops)
	got := ""
	for _, o := range ops {
		got += strconv.FormatInt(replyOf(t, o)[0], 10)
		o.release()
	}
	if got != "110" {
		t.Fatalf("admitted %s after NOSCRIPT; want 110", got)
	}
	if n := c.ZCard(ctx, ruleKey("p", "acme", r, 0)).Val(); n != 2 {
		t.Fatalf("the log holds %d members; want 2, each admitted once", n)
	}
	if ok := c.ScriptExists(ctx, decideScript.Hash()).Val(); len(ok) != 1 || !ok[0] {
		t.Fatal("decide.lua not loaded after NOSCRIPT")
	}
}
