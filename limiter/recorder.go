package limiter

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// recordBatch is the most records one pipeline carries.
const recordBatch = 256

// recordTimeout bounds one batch on the primary.
const recordTimeout = time.Second

// record is one admission to write to the primary: the seq-th record its
// pending shard queued.
type record struct {
	keys []string
	args []any
	sh   *pendingShard
	seq  int64
	// at is when a replica read's decision admitted it (admit), whose
	// members only this record writes; zero for a decision on the
	// primary, whose members decide.lua wrote.
	at time.Time
}

// recorder writes admissions decided on a replica to the primary, in
// order, over one pipeline at a time. Its queue is bounded, and a
// decision takes a place in it before it begins (reserve): a gateway
// whose recorder is behind while the primary takes its records sheds
// decisions (ErrOverload) rather than admit one whose record has no room
// (lagging). A recorder whose records fail, or whose batch has waited
// longer than a command may (the primary stalled, or gone), sheds
// nothing: the decisions go on, their records dropped and counted when
// the queue is full, never waited for, and marked degraded (recorder)
// while the records fail.
type recorder struct {
	clients *Clients
	queue   chan record
	// deciding counts the decisions under way that may queue a record:
	// with the queue, at most its capacity.
	deciding atomic.Int64
	// sendingSince is when the batch on the wire was sent (unix ns), 0
	// between batches: a recorder behind whose batch is not older than a
	// command may take is the gateway's lag; one whose batch is, or whose
	// records fail, waits on a primary that does not answer it.
	sendingSince atomic.Int64
	// lastFailed and lastWritten are when a record last failed and was
	// last written, as steps of tick: an order that no clock step upsets
	// and no two events share.
	lastFailed, lastWritten, tick atomic.Int64
}

// healthy is false while records fail: since the last failure nothing was
// written.
func (r *recorder) healthy() bool { return r.lastFailed.Load() <= r.lastWritten.Load() }

func newRecorder(c *Clients, size int) *recorder {
	return &recorder{clients: c, queue: make(chan record, size)}
}

// lagging reports whether a recorder behind is the gateway's lag, not the
// primary's: its records are written (healthy), and no batch of them has
// waited on the primary longer than bound (a command's timeout).
func (r *recorder) lagging(now time.Time, bound time.Duration) bool {
	since := r.sendingSince.Load()
	return r.healthy() && (since == 0 || now.UnixNano()-since <= int64(bound))
}

// reserve takes a place in the queue for a decision about to begin,
// which queues at most one record: false when the queue and the
// decisions under way fill it (the gateway is behind: shed). Give it back
// with unreserve once the decision has queued its record, or not.
func (r *recorder) reserve() bool {
	if int(r.deciding.Add(1))+len(r.queue) > cap(r.queue) {
		r.deciding.Add(-1)
		return false
	}
	return true
}

func (r *recorder) unreserve() { r.deciding.Add(-1) }

// enqueue queues rec, or drops and counts it when the queue is full; it
// reports whether rec was queued.
func (r *recorder) enqueue(rec record) bool {
	select {
	case r.queue <- rec:
		return true
	default:
		recordsDropped.Inc()
		r.lastFailed.Store(r.tick.Add(1))
		return false
	}
}

// run writes batches until ctx ends, then writes what is queued, each
// record sent once: shutting down, a stalled primary is not waited for
// twice.
func (r *recorder) run(ctx context.Context) {
	drain(ctx, r.queue, recordBatch, func(batch []record) { r.write(batch, ctx.Err() == nil) })
}

// write sends a batch as one pipeline of EVALSHA. A record that failed
// for want of a reply (a timeout, a connection lost: the script may have
// run) is sent once more, in order, before its outcome is told:
// record.lua is idempotent, its members added NX and its mark never moved
// back. A record that did not run (unsent) is lost at once
// (pendingShard.lost, if a replica read admitted it), and one still
// failing after the second send then; meanwhile the recorder counts as
// failing (healthy), so the decisions made during the second send, which
// may take a later record's mark for the unknown one's, are marked. With
// twice false, there is no second send.
func (r *recorder) write(batch []record, twice bool) {
	r.sendingSince.Store(time.Now().UnixNano())
	defer r.sendingSince.Store(0)
	errs := make([]error, len(batch))
	unknown := make([]bool, len(batch)) // after the first send
	r.send(batch, errs, func(int) bool { return true })
	again := false
	for i, err := range errs {
		switch {
		case err == nil:
		case unsent(err):
			r.failed(batch[i])
		default:
			unknown[i], again = true, true
		}
	}
	if again && twice {
		r.lastFailed.Store(r.tick.Add(1))
		r.send(batch, errs, func(i int) bool { return unknown[i] })
	}
	// The failures first: a success told before them would make the
	// recorder healthy while a decision may still take a failed record's
	// entry for shown.
	for i, err := range errs {
		if err != nil && unknown[i] { // failed again, however
			r.failed(batch[i])
		}
	}
	for i, err := range errs {
		if sh := batch[i].sh; sh != nil {
			sh.written.Store(batch[i].seq) // a shard's records come in order
		}
		if err == nil {
			recordsWritten.Inc()
			r.lastWritten.Store(r.tick.Add(1))
		}
	}
}

// failed counts rec as failed, and lost if a replica read admitted it
// (its members written by nothing else).
func (r *recorder) failed(rec record) {
	recordsFailed.Inc()
	r.lastFailed.Store(r.tick.Add(1))
	if rec.sh != nil && !rec.at.IsZero() {
		rec.sh.lost(rec)
	}
}

// send writes, as one pipeline, the records of batch for which which is
// true, setting their errs. A pipeline gets no NOSCRIPT fallback from
// go-redis: a record answered NOSCRIPT is written again with Run, which
// loads the script; once one of those fails without a reply, the later
// ones are not run but given its error, to be sent again in order.
func (r *recorder) send(batch []record, errs []error, which func(int) bool) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	p := r.clients.Primary.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, rec := range batch {
		if which(i) {
			cmds[i] = p.EvalSha(ctx, recordScript.Hash(), rec.keys, rec.args...)
		}
	}
	if p.Len() == 0 {
		return
	}
	p.Exec(ctx) //nolint:errcheck // each command's error is read below
	var unknown error
	for i, c := range cmds {
		if c == nil {
			continue
		}
		err := c.Err()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err = unknown; err == nil {
				err = recordScript.Run(ctx, r.clients.Primary, batch[i].keys, batch[i].args...).Err()
			}
			if err != nil && !unsent(err) {
				unknown = err
			}
		}
		errs[i] = err
	}
}

// unsent reports whether err says the record's last attempt did not run:
// Redis' answer (it refused: OOM, READONLY, a script error), or no
// connection to send it on (refused at the dial, as when the primary is
// down). Any other error, a timeout or a connection lost, leaves it
// unknown. (go-redis' own retries may hide an earlier attempt that ran:
// then the record is counted twice, which is conservative.)
func unsent(err error) bool {
	var re redis.Error
	var oe *net.OpError
	return errors.As(err, &re) || errors.As(err, &oe) && oe.Op == "dial"
}
