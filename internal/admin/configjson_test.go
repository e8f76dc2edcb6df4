package admin

import (
	"bytes"
	"encoding/json"
	"reflect"
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
