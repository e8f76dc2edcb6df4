package limiter

import (
	"errors"
	"strings"
)

// carry sends o on r's pipe for its tenant and waits for it. A Cluster
// redirect (MOVED: the slot has moved; ASK: it is being migrated) is
// followed once, to the node it names, with a copy of o; the script did
// not run on the first node. It returns the op that was answered, for the
// caller to read and release, with the pipe that answered it, or the
// error (every op released).
func carry(r router, o *op) (*op, *pipe, error) {
	p, err := r.pipeFor(o.req.Tenant)
	if err != nil {
		o.discard()
		return nil, nil, err
	}
	p.do(o)
	if addr, asking, ok := redirect(o.err); ok {
		r.failed(p, o.err) // the slot map is reloaded meanwhile
		if q := r.pipeAt(addr); q != nil {
			next := getOp()
			next.copyRequest(o)
			next.asking = asking
			o.release()
			o, p = next, q
			q.do(o)
		}
	}
	if o.err != nil {
		if o.err != errQueueFull && !errors.Is(o.err, errClosed) {
			// Shed at once by the gateway's own queue, or closed: a
			// Cluster replica that was asked nothing is not unpinned, nor
			// the map reloaded. A decision shed after waiting past the
			// queue timeout is told: its node's lanes may be slow.
			r.failed(p, o.err)
		}
		err := o.err
		o.release()
		return nil, nil, err
	}
	return o, p, nil
}

// redirect reads a MOVED or ASK error reply: the node to go to, and
// whether it needs ASKING first.
func redirect(err error) (addr string, asking, ok bool) {
	if err == nil {
		return "", false, false // before re: taking its address allocates
	}
	return redirectOf(err)
}

func redirectOf(err error) (addr string, asking, ok bool) {
	var re replyError
	if !errors.As(err, &re) {
		return "", false, false
	}
	f := strings.Fields(string(re))
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return "", false, false
	}
	return f[2], f[0] == "ASK", true
}
