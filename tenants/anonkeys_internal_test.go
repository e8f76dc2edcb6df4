package tenants

import (
	"hash/maphash"
	"net/netip"
	"testing"
	"unsafe"
)

// TestAnonymousKeysAreMadeOnceAndBounded: a caller's key is the same
// string at every request, made once; the memo never holds more than
// anonKeysMax keys, however many callers come.
func TestAnonymousKeysAreMadeOnceAndBounded(t *testing.T) {
	tn := &Tenant{ID: AnonymousID, v6bits: 64, anon: newAnonKeys()}
	a := netip.MustParseAddr("2001:db8:1:2::7")
	if got := tn.AnonymousKey(a); got != "anon:2001:db8:1:2::/64" {
		t.Fatalf("key of %s: %q", a, got)
	}
	if n := testing.AllocsPerRun(100, func() { tn.AnonymousKey(a) }); n != 0 {
		t.Fatalf("%.0f allocations for a caller seen before; want 0", n)
	}
	for i := range anonKeysMax + 10 {
		b := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if got, want := tn.AnonymousKey(b), "anon:"+b.String(); got != want {
			t.Fatalf("key of %s: %q; want %q", b, got, want)
		}
	}
	n := 0
	for i := range tn.anon.shards {
		m := len(tn.anon.shards[i].cur) + len(tn.anon.shards[i].old)
		if m > anonKeysMax/anonShards {
			t.Fatalf("shard %d holds %d keys; want at most %d", i, m, anonKeysMax/anonShards)
		}
		n += m
	}
	if n == 0 || n > anonKeysMax {
		t.Fatalf("%d keys held; want 1 to %d", n, anonKeysMax)
	}
}

// TestACallerStillCallingKeepsItsKey: new callers flooding the shard of a
// caller that keeps calling, ten generations' worth, never drop its key:
// the same string, not made again. A caller gone quiet for two
// generations is dropped.
func TestACallerStillCallingKeepsItsKey(t *testing.T) {
	tn := &Tenant{ID: AnonymousID, v6bits: 64, anon: newAnonKeys()}
	a := netip.MustParseAddr("192.0.2.1")
	shardOf := func(addr netip.Addr) uint64 {
		return maphash.String(tn.anon.seed, "anon:"+addr.String()) % anonShards
	}
	quiet := netip.MustParseAddr("198.51.100.0")
	for shardOf(quiet) != shardOf(a) {
		quiet = quiet.Next()
	}
	first := unsafe.StringData(tn.AnonymousKey(a))
	quietFirst := unsafe.StringData(tn.AnonymousKey(quiet))
	flooded := 0
	for i := 0; flooded < 10*anonGeneration; i++ {
		b := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if shardOf(b) != shardOf(a) {
			continue
		}
		tn.AnonymousKey(b)
		if flooded++; flooded%(anonGeneration/2) == 0 {
			if got := unsafe.StringData(tn.AnonymousKey(a)); got != first {
				t.Fatalf("after %d new callers in its shard, the caller's key was made again", flooded)
			}
		}
	}
	if unsafe.StringData(tn.AnonymousKey(quiet)) == quietFirst {
		t.Fatal("a caller quiet for ten generations kept its key; want it dropped")
	}
}
