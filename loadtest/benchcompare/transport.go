package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
)

// fastTransport is an http.RoundTripper over a fasthttp.HostClient for
// vegeta's open loop. net/http's client, sharing one pinned CPU with the
// upstream, saturates at a few thousand requests per second, below half
// the closed-loop rate of the faster systems; the open loop would then
// measure the load generator. vegeta still paces, times and counts.
type fastTransport struct {
	client *fasthttp.HostClient
}

// newFastTransport is a fastTransport to addr, 127.0.0.1:port only.
func newFastTransport(addr string) (*fastTransport, error) {
	if err := harness.CheckLoopback(addr); err != nil {
		return nil, err
	}
	return &fastTransport{client: &fasthttp.HostClient{
		Addr: addr, MaxConns: openWorkers, ReadTimeout: requestTimeout, WriteTimeout: requestTimeout,
		MaxConnWaitTimeout: requestTimeout, MaxIdleConnDuration: time.Minute,
		NoDefaultUserAgentHeader: true, DisablePathNormalizing: true,
	}}, nil
}

// RoundTrip sends r (a bodiless request to the transport's address) and
// returns the status and the X-RateLimit-Status header; the body is read
// and dropped.
func (t *fastTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	if r.URL.Host != t.client.Addr {
		return nil, fmt.Errorf("fastTransport: host %q; this transport sends only to %s", r.URL.Host, t.client.Addr)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(r.URL.RequestURI())
	req.Header.SetHost(t.client.Addr)
	req.Header.SetMethod(r.Method)
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if err := t.client.Do(req, resp); err != nil {
		return nil, err
	}
	code := resp.StatusCode()
	out := &http.Response{
		Status:     strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, ContentLength: 0, Request: r,
	}
	if v := resp.Header.Peek(statusHeader); len(v) > 0 {
		out.Header.Set(statusHeader, string(v))
	}
	return out, nil
}

// CloseIdleConnections closes the client's idle connections.
func (t *fastTransport) CloseIdleConnections() { t.client.CloseIdleConnections() }
