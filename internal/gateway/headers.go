package gateway

import (
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// Header names, in fasthttp's canonical form so SetCanonical can be used.
var (
	hdrLimit      = []byte("X-Ratelimit-Limit")
	hdrRemaining  = []byte("X-Ratelimit-Remaining")
	hdrReset      = []byte("X-Ratelimit-Reset")
	hdrStatus     = []byte("X-Ratelimit-Status")
	hdrPolicy     = []byte("Ratelimit-Policy")
	hdrRateLimit  = []byte("Ratelimit")
	hdrRetryAfter = []byte("Retry-After")
	hdrRequestID  = []byte("X-Request-Id")
	// hdrShadow names the shadow rules that would have denied the request.
	hdrShadow = []byte("X-Ratelimit-Shadow")

	statusOK         = []byte("ok")
	statusDegraded   = []byte("degraded")
	statusOverloaded = []byte("overloaded")
)

// rateFields are the fields writeRateHeaders may set: the gateway's own on
// every response it forwards. An upstream's copies (of a limiter of its
// own, say) are removed, every line of them, so that a client reads one
// answer, the gateway's.
var rateFields = [][]byte{hdrStatus, hdrLimit, hdrRemaining, hdrReset, hdrPolicy, hdrRateLimit, hdrShadow}

// rateField reports whether name, in any case, is one of rateFields: of
// the same length, so that a non-ASCII letter that folds to an ASCII one
// (ſ to s) never makes another name one of them.
func rateField(name []byte) bool {
	if len(name) < len(hdrRateLimit) || name[0]|0x20 != 'x' && name[0]|0x20 != 'r' {
		return false // most names, at a glance
	}
	for _, k := range rateFields {
		if len(k) == len(name) && bytes.EqualFold(name, k) {
			return true
		}
	}
	return false
}

// hdrTenant tells the upstream which tenant was admitted.
const hdrTenant = "X-L1gw-Tenant"

// seconds rounds d up to whole seconds: a client told to wait 0 seconds
// for capacity that frees in 300ms would come back too early.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// tightest picks the rule the X-RateLimit-* headers describe, among the
// enforced rules: when denied, the denying rule that frees last;
// otherwise the one with the least remaining (the one that frees last
// among equals). It is -1 when every rule is a shadow rule.
func tightest(d *limiter.Decision) int {
	best := -1
	for i, s := range d.States() {
		if s.Shadow || s.Lease || s.Undecided {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := d.Rules[best]
		if !d.Allowed {
			if s.RetryAfter > b.RetryAfter {
				best = i
			}
			continue
		}
		if s.Remaining < b.Remaining || s.Remaining == b.Remaining && s.Reset > b.Reset {
			best = i
		}
	}
	return best
}

// writeRateHeaders sets the rate-limit headers for a verdict on rules. It
// must run after the upstream's response is in place: fasthttp resets the
// response on Do and headers on ctx.Error. It does not allocate.
//
// Shadow rules count for nothing but X-RateLimit-Shadow and their own
// RateLimit-Policy items: never for Retry-After, the remaining counts or
// the RateLimit header.
func writeRateHeaders(h *fasthttp.ResponseHeader, rules []limiter.Rule, v *degrade.Verdict) {
	h.DelBytes(hdrShadow) // only ever the gateway's own, not the upstream's
	if v.Overloaded {
		h.SetCanonical(hdrStatus, statusOverloaded) // shed: nothing was decided
		return
	}
	if v.Degraded {
		h.SetCanonical(hdrStatus, statusDegraded)
	} else {
		h.SetCanonical(hdrStatus, statusOK)
	}
	d := &v.Decision
	if d.N == 0 || d.N != len(rules) {
		return // decided without the store: nothing true to say about counts
	}
	var buf [512]byte
	if i := tightest(d); i >= 0 {
		t := d.Rules[i]
		h.SetCanonical(hdrLimit, strconv.AppendInt(buf[:0], t.Limit, 10))
		h.SetCanonical(hdrRemaining, strconv.AppendInt(buf[:0], t.Remaining, 10))
		h.SetCanonical(hdrReset, strconv.AppendInt(buf[:0], seconds(t.Reset), 10))
	}
	if !v.Allowed {
		h.SetCanonical(hdrRetryAfter, strconv.AppendInt(buf[:0], max(seconds(d.RetryAfter()), 1), 10))
	}
	if b := appendPolicies(buf[:0], rules, d); len(b) > 0 {
		h.SetCanonical(hdrPolicy, b)
	}
	if b := appendRateLimits(buf[:0], rules, d); len(b) > 0 {
		h.SetCanonical(hdrRateLimit, b)
	}
	if d.ShadowDenied() {
		h.SetCanonical(hdrShadow, appendShadowDenied(buf[:0], rules, d))
	}
}

// appendPolicies appends the RateLimit-Policy list: an RFC 9651 list, one
// item per rule but the concurrency limits, in the syntax of draft-ietf-httpapi-ratelimit-headers;
// a shadow rule's item carries the parameter shadow (clients ignore
// parameters they do not know). w is the window the store counted over:
// a quota's is its current period's length (a month of 30 days: 2592000).
//
//	"per_second";q=10;w=1, "per_minute";q=300;w=60, "trial";q=100;w=60;shadow
func appendPolicies(b []byte, rules []limiter.Rule, d *limiter.Decision) []byte {
	n := 0
	for i, r := range rules {
		if r.Lease { // not a rate: in flight, not per window
			continue
		}
		w := r.Window
		if s := d.Rules[i].Window; s > 0 {
			w = s
		}
		b = appendItem(b, n, r.Name)
		n++
		b = append(b, ";q="...)
		b = strconv.AppendInt(b, r.Limit, 10)
		b = append(b, ";w="...)
		b = strconv.AppendInt(b, max(seconds(w), 1), 10)
		if r.Shadow() {
			b = append(b, ";shadow"...)
		}
	}
	return b
}

// appendRateLimits appends the RateLimit list, one item per enforced rule:
//
//	"per_second";r=7;t=1, "per_minute";r=290;t=60
func appendRateLimits(b []byte, rules []limiter.Rule, d *limiter.Decision) []byte {
	n := 0
	for i, r := range rules {
		s := d.Rules[i]
		if s.Shadow || s.Lease || s.Undecided {
			continue
		}
		b = appendItem(b, n, r.Name)
		b = append(b, ";r="...)
		b = strconv.AppendInt(b, s.Remaining, 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, seconds(s.Reset), 10)
		n++
	}
	return b
}

// appendShadowDenied appends the names of the shadow rules that would
// have denied the request, comma-separated: X-RateLimit-Shadow.
func appendShadowDenied(b []byte, rules []limiter.Rule, d *limiter.Decision) []byte {
	for i, s := range d.States() {
		if !s.Shadow || !s.Denied() {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, rules[i].Name...)
	}
	return b
}

// appendItem starts list item i: the policy name as an sf-string. Rule
// names are restricted to [A-Za-z0-9_.-], so no escaping is needed.
func appendItem(b []byte, i int, name string) []byte {
	if i > 0 {
		b = append(b, ", "...)
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"')
}
