package gateway

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/degrade"
	"github.com/l1gw/l1gw/limiter"
)

// Problem types (RFC 9457). The quota types are the IANA-registered ones
// the RateLimit headers draft defines.
const (
	typeQuotaExceeded   = "https://iana.org/assignments/http-problem-types#quota-exceeded"
	typeReducedCapacity = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
	typeBlank           = "about:blank"
)

var contentTypeProblem = []byte("application/problem+json")

// problem is an RFC 9457 body. Fields hold constant or validated text, so
// the writer needs no JSON escaping.
type problem struct {
	status int
	typ    string
	title  string
	detail string
}

// writeProblem replaces the response with p, as application/problem+json;
// headers set before it are dropped.
func writeProblem(ctx *fasthttp.RequestCtx, p problem) {
	writeProblemWith(ctx, p, nil, nil)
}

// writeProblemWith writes p; for a 429 it adds "violated-policies", the
// names of the enforced rules that denied, and says in the detail when
// each exhausted quota (a fixed rule) resets.
func writeProblemWith(ctx *fasthttp.RequestCtx, p problem, rules []limiter.Rule, v *degrade.Verdict) {
	resp := &ctx.Response
	// Nothing of a failed upstream answer may leak into ours: its headers
	// (cookies, encodings) and its status text.
	closeConn := resp.ConnectionClose()
	resp.Header.Reset()
	resp.ResetBody()
	if closeConn {
		resp.SetConnectionClose()
	}
	resp.SetStatusCode(p.status)
	resp.Header.SetContentTypeBytes(contentTypeProblem)
	var buf [1024]byte
	b := append(buf[:0], `{"type":"`...)
	b = append(b, p.typ...)
	b = append(b, `","title":"`...)
	b = append(b, p.title...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(p.status), 10)
	b = append(b, `,"detail":"`...)
	b = append(b, p.detail...)
	decided := v != nil && v.Decision.N == len(rules)
	if decided {
		b = appendQuotaResets(b, rules, &v.Decision, time.Now())
	}
	b = append(b, '"')
	if decided {
		b = appendViolated(b, rules, &v.Decision)
	}
	b = append(b, "}\n"...)
	resp.AppendBody(b)
}

// appendViolated appends "violated-policies": the enforced rules that
// denied.
func appendViolated(b []byte, rules []limiter.Rule, d *limiter.Decision) []byte {
	b = append(b, `,"violated-policies":[`...)
	n := 0
	for i, s := range d.States() {
		if s.Denied() && !s.Shadow {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), rules[i].Name...), '"')
			n++
		}
	}
	return append(b, ']')
}

// appendQuotaResets appends to a detail, for each exhausted quota (an
// enforced fixed rule that denied), when its period ends:
// `; quota "monthly" resets at 2026-12-15T00:00:00Z (in 1234 s)`.
// Rule names need no JSON escaping (see appendItem).
func appendQuotaResets(b []byte, rules []limiter.Rule, d *limiter.Decision, now time.Time) []byte {
	for i, s := range d.States() {
		if !s.Denied() || s.Shadow || rules[i].Algorithm != limiter.AlgoFixed {
			continue
		}
		b = append(b, `; quota \"`...)
		b = append(b, rules[i].Name...)
		b = append(b, `\" resets at `...)
		b = now.Add(s.RetryAfter).UTC().Round(time.Second).AppendFormat(b, time.RFC3339)
		b = append(b, " (in "...)
		b = strconv.AppendInt(b, max(seconds(s.RetryAfter), 1), 10)
		b = append(b, " s)"...)
	}
	return b
}

// The gateway's own answers.
var (
	problemUnknownKey   = problem{fasthttp.StatusUnauthorized, typeBlank, "Unauthorized", "the API key is not known"}
	problemAmbiguousKey = badRequest("the API key header or Authorization is sent more than once")
	problemNoRoute      = problem{fasthttp.StatusNotFound, typeBlank, "Not Found", "no route matches this host and path"}
	problemQuota        = problem{fasthttp.StatusTooManyRequests, typeQuotaExceeded,
		"Request cannot be satisfied as assigned quota has been exceeded", "retry after the time in the Retry-After header"}
	problemFailClosed = problem{fasthttp.StatusServiceUnavailable, typeReducedCapacity,
		"Rate limits cannot be checked", "the rate-limit store is unavailable and the gateway fails closed"}
	problemOverload = problem{fasthttp.StatusServiceUnavailable, typeReducedCapacity,
		"Gateway overloaded", "the gateway has more requests than it can check in time; retry after the time in the Retry-After header"}
	problemPanic = problem{fasthttp.StatusInternalServerError, typeBlank, "Internal Server Error",
		"the gateway failed to handle this request"}
)

// badRequest is a 400 of the gateway's own, saying what is wrong.
func badRequest(detail string) problem {
	return problem{fasthttp.StatusBadRequest, typeBlank, "Bad Request", detail}
}

// upstreamProblem is the answer for a failed forward.
func upstreamProblem(status int) problem {
	switch status {
	case fasthttp.StatusGatewayTimeout:
		return problem{status, typeBlank, "Gateway Timeout", "the upstream did not answer in time"}
	case fasthttp.StatusServiceUnavailable:
		return problem{status, typeBlank, "Service Unavailable", "every connection to the upstream is busy"}
	}
	return problem{status, typeBlank, "Bad Gateway", "the upstream could not be reached or broke the connection"}
}
