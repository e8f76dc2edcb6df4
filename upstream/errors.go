package upstream

import (
	"errors"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"
)

// ErrorKind classifies a failed forward; it is the kind label of
// l1gw_upstream_errors_total.
type ErrorKind string

// Error kinds.
const (
	KindTimeout   ErrorKind = "timeout"   // the upstream did not answer in time: 504
	KindRefused   ErrorKind = "refused"   // nothing listens, or the dial failed: 502
	KindReset     ErrorKind = "reset"     // the connection broke mid-exchange: 502
	KindSaturated ErrorKind = "saturated" // every connection to the target is busy: 503
	KindTooLarge  ErrorKind = "too_large" // the response exceeded max_response_bytes: 502
	KindOther     ErrorKind = "other"     // anything else, malformed responses included: 502
	// KindClient is the client's failure, not the target's: its body
	// broke off (ErrClientBody). It is not counted, nor held against the
	// target: 400.
	KindClient ErrorKind = "client"
)

// ErrClientBody marks an error reading the client's body as it streamed
// to the target: whoever reads the body for Forward wraps its errors in
// it.
var ErrClientBody = errors.New("the client's request body broke off")

var errorKinds = []ErrorKind{KindTimeout, KindRefused, KindReset, KindSaturated, KindTooLarge, KindOther}

// Error is a forward that failed.
type Error struct {
	// Upstream names the upstream.
	Upstream string
	// Kind classifies the failure.
	Kind ErrorKind
	// Err is the client's error.
	Err error
}

func (e *Error) Error() string {
	return "upstream " + e.Upstream + ": " + string(e.Kind) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status a client gets for the failure.
func (e *Error) Status() int {
	switch e.Kind {
	case KindTimeout:
		return fasthttp.StatusGatewayTimeout
	case KindSaturated:
		return fasthttp.StatusServiceUnavailable
	case KindClient:
		return fasthttp.StatusBadRequest
	}
	return fasthttp.StatusBadGateway
}

// classify returns the kind of a forwarding error.
func classify(err error) ErrorKind {
	switch {
	case errors.Is(err, fasthttp.ErrDialTimeout), IsTimeout(err): // fasthttp.ErrTimeout says Timeout()
		return KindTimeout
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return KindSaturated
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return KindTooLarge
	case errors.Is(err, syscall.ECONNREFUSED), isDialError(err):
		return KindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, fasthttp.ErrConnectionClosed):
		return KindReset
	}
	return KindOther
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
