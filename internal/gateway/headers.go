package gateway

import (
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

	statusOK         = []byte("ok")
	statusDegraded   = []byte("degraded")
	statusOverloaded = []byte("overloaded")
)

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

// tightest picks the rule the X-RateLimit-* headers describe: when denied,
// the denying rule that frees last; otherwise the one with the least
// remaining (the one that frees last among equals).
func tightest(d *limiter.Decision) int {
	best := 0
	for i, s := range d.States() {
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
func writeRateHeaders(h *fasthttp.ResponseHeader, rules []limiter.Rule, v *degrade.Verdict) {
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
	t := d.Rules[tightest(d)]
	h.SetCanonical(hdrLimit, strconv.AppendInt(buf[:0], t.Limit, 10))
	h.SetCanonical(hdrRemaining, strconv.AppendInt(buf[:0], t.Remaining, 10))
	h.SetCanonical(hdrReset, strconv.AppendInt(buf[:0], seconds(t.Reset), 10))
	if !v.Allowed {
		h.SetCanonical(hdrRetryAfter, strconv.AppendInt(buf[:0], max(seconds(d.RetryAfter()), 1), 10))
	}

	// RFC 9651 lists, one item per rule, in the syntax of
	// draft-ietf-httpapi-ratelimit-headers:
	//   RateLimit-Policy: "per_second";q=10;w=1, "per_minute";q=300;w=60
	//   RateLimit: "per_second";r=7;t=1, "per_minute";r=290;t=60
	b := buf[:0]
	for i, r := range rules {
		b = appendItem(b, i, r.Name)
		b = append(b, ";q="...)
		b = strconv.AppendInt(b, r.Limit, 10)
		b = append(b, ";w="...)
		b = strconv.AppendInt(b, max(seconds(r.Window), 1), 10)
	}
	h.SetCanonical(hdrPolicy, b)
	b = buf[:0]
	for i, r := range rules {
		s := d.Rules[i]
		b = appendItem(b, i, r.Name)
		b = append(b, ";r="...)
		b = strconv.AppendInt(b, s.Remaining, 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, seconds(s.Reset), 10)
	}
	h.SetCanonical(hdrRateLimit, b)
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
