package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/config"
)

// TestConfigJSONIsEncodingJSONButDurations: the walk writes exactly what
// encoding/json writes of the whole demo config (with its plans, tenants
// and upstreams), durations aside; with durations, they are their String,
// which the config file takes back.
func TestConfigJSONIsEncodingJSONButDurations(t *testing.T) {
	cfg, err := config.Load(config.Input{})
	if err != nil {
		t.Fatal(err)
	}
	shown := cfg.Redacted()
	want, err := json.Marshal(shown)
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&durationEncoder{}).encode(nil, reflect.ValueOf(shown))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("without durations: %v\n%s\nwant encoding/json's\n%s", err, got, want)
	}

	b, err := configJSON(shown)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	for _, c := range []struct {
		section, key string
		want         time.Duration
	}{
		{"ratelimit", "budget", cfg.RateLimit.Budget},
		{"redis", "read_timeout", cfg.Redis.ReadTimeout},
		{"tenants", "refresh", cfg.Tenants.Refresh},
	} {
		section, _ := m[c.section].(map[string]any)
		s, _ := section[c.key].(string)
		if d, err := time.ParseDuration(s); err != nil || d != c.want {
			t.Errorf("%s.%s: %#v; want %q", c.section, c.key, section[c.key], c.want.String())
		}
	}
	// deeper: a plan's rule, an upstream
	if !bytes.Contains(b, []byte(`"window":"1m0s"`)) || !bytes.Contains(b, []byte(`"timeout":"10s"`)) {
		t.Errorf("the demo's per_minute window (1m) or its upstream's timeout (10s) not shown as such:\n%s", b)
	}
}

type fidelityInner struct {
	A time.Time     `json:"a,omitzero"`
	B *time.Time    `json:"b,omitzero"`
	C []int         `json:"c,omitempty"`
	D time.Duration `json:"d"`
	e int
}

type fidelityOuter struct {
	fidelityInner
	M map[string]fidelityInner `json:"m"`
	P *fidelityInner           `json:"p,omitempty"`
	S []byte                   `json:"s"`
	I any                      `json:"i"`
	X string                   `json:"-"`
	Y string                   `json:"y,omitempty"`
}

// TestDurationEncoderMatchesEncodingJSON: beyond the demo config, the
// shapes encoding/json treats apart (an embedded struct, omitzero and
// omitempty, a marshaler, bytes, a sorted map, an interface, escaping),
// empty and full.
func TestDurationEncoderMatchesEncodingJSON(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UTC()
	for _, v := range []any{
		&fidelityOuter{},
		&fidelityOuter{fidelityInner: fidelityInner{A: now, B: &now, C: []int{1}, D: time.Second, e: 1},
			M: map[string]fidelityInner{"b": {}, "a": {D: 3}}, P: &fidelityInner{}, S: []byte("hi"), I: 3, X: "x", Y: "<&>"},
	} {
		want, _ := json.Marshal(v)
		got, err := (&durationEncoder{}).encode(nil, reflect.ValueOf(v))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%v\n%s\nwant encoding/json's\n%s", err, got, want)
		}
	}
}

type zeroAtSeven struct{ N int }

// IsZero is on the pointer: encoding/json's omitzero still asks it.
func (z *zeroAtSeven) IsZero() bool { return z.N == 7 }

type (
	dupDeep struct{ Deep int }
	dupA    struct {
		dupDeep     // reached twice at depth 2 (through dupB too): Deep is left out
		Same    int // as dupB.Same at depth 1: both left out
		Won     int `json:"Won"` // tagged, so it wins over dupB's
		Shadow  int // under edgeCases.Shadow
	}
	dupB struct {
		dupDeep
		Same int
		Won  int
	}
	named struct{ Y int }
)

type edgeCases struct {
	dupA
	dupB
	named  `json:"named"` // unexported, but named: a field
	Shadow int
	Q      int           `json:"q,string"`
	QP     *int          `json:"qp,string"`
	QS     string        `json:"qs,string"`
	QB     bool          `json:"qb,string"`
	QD     time.Duration `json:"qd,string"`
	//lint:ignore SA5008 ",string" on a marshaler, which encoding/json ignores, is the case
	QT     time.Time                  `json:"qt,string"` // a marshaler: not quoted
	Any    any                        `json:"any,omitzero"`
	Zeroer interface{ IsZero() bool } `json:"zeroer,omitzero"`
	ByPtr  zeroAtSeven                `json:"byptr,omitzero"`
	HTML   int                        `json:"a<b>&"`
	//lint:ignore SA5008 a tag name encoding/json refuses is the case
	Invalid int `json:"a\\b"` // not a name: the Go name
}

// TestDurationEncoderFieldRules: encoding/json's rules for which fields a
// struct writes and how (names that clash through embedding, ",string",
// omitzero by a pointer's IsZero or through an interface holding a nil
// pointer, an unexported embedded struct with a name, escaped and invalid
// names) are the walk's rules too, for an addressable value and not.
func TestDurationEncoderFieldRules(t *testing.T) {
	n := 5
	var nilTime *time.Time
	full := edgeCases{dupA: dupA{dupDeep{1}, 2, 3, 4}, dupB: dupB{dupDeep{5}, 6, 7}, named: named{8},
		Shadow: 9, Q: 10, QP: &n, QS: `a"<b`, QB: true, QD: time.Second, QT: time.Unix(0, 0).UTC(),
		Any: nilTime, Zeroer: nilTime, ByPtr: zeroAtSeven{7}, HTML: 11, Invalid: 12}
	other := full
	other.Any, other.Zeroer, other.ByPtr, other.QP = time.Time{}, time.Unix(1, 0), zeroAtSeven{1}, nil
	for i, v := range []any{edgeCases{}, &edgeCases{}, full, &full, other, &other} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := (&durationEncoder{}).encode(nil, reflect.ValueOf(v))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d: %v\n%s\nwant encoding/json's\n%s", i, err, got, want)
		}
		if b, err := configJSON(v); err != nil || !json.Valid(b) {
			t.Errorf("%d: with durations: %v\n%s", i, err, b)
		}
	}
}

type nilSafe struct{}

// MarshalJSON answers for a nil receiver too.
func (n *nilSafe) MarshalJSON() ([]byte, error) { return []byte(`"nil-safe"`), nil }

type cyclic struct{ Next *cyclic }

// TestDurationEncoderMapsInterfacesCycles: maps by integer keys (their
// durations written as such), maps whose keys encoding/json refuses
// (refused even when nil or empty), fields of a marshaler interface (its
// method, not the held value's: big.Int's text, not its JSON), and
// cycles, which are an error, not a stack overflow.
func TestDurationEncoderMapsInterfacesCycles(t *testing.T) {
	type marshalers struct {
		T encoding.TextMarshaler
		J json.Marshaler
	}
	for i, v := range []any{
		map[int]time.Duration{-1: 1, 2: 3},
		map[uint8]string{1: "a", 10: "b", 2: "c"},
		map[bool]int(nil),
		map[float64]string{},
		struct{ M map[bool]int }{},
		marshalers{big.NewInt(5), (*nilSafe)(nil)},
		map[string]marshalers{"a": {T: (*big.Int)(nil)}},
		&marshalers{},
	} {
		want, wantErr := json.Marshal(v)
		got, err := (&durationEncoder{}).encode(nil, reflect.ValueOf(v))
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("%d: %T: %s, %v; want encoding/json's %s, %v", i, v, got, err, want, wantErr)
		}
	}
	if b, err := configJSON(map[int]struct{ Wait time.Duration }{429: {time.Minute}}); err != nil || string(b) != `{"429":{"Wait":"1m0s"}}` {
		t.Errorf("a duration under an integer-keyed map: %s, %v", b, err)
	}
	// encoding/json panics on a nil key of a marshaler interface type; the
	// walk, which New runs outside the recoverer, refuses it.
	if b, err := configJSON(map[encoding.TextMarshaler]int{nil: 1}); err == nil {
		t.Errorf("a nil interface key: %s; want an error", b)
	}

	c := &cyclic{}
	c.Next = c
	m := map[string]any{}
	m["m"] = m
	s := []any{nil}
	s[0] = s
	for _, v := range []any{c, m, s} {
		if _, err := configJSON(v); err == nil || !strings.Contains(err.Error(), "cycle") {
			t.Errorf("%T in a cycle: %v; want encoding/json's cycle error", v, err)
		}
	}
	deep := &cyclic{}
	for range 2 * cycleLevel {
		deep = &cyclic{deep}
	}
	if _, err := configJSON(deep); err != nil {
		t.Errorf("a deep chain that is not a cycle: %v", err)
	}
}
