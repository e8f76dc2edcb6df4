package limiter

import (
	"context"
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
// order, over one pipeline at a time. Its queue is bounded: when it is
// full the record is dropped and counted, never waited for.
type recorder struct {
	clients *Clients
	queue   chan record
	// lastFailed and lastWritten are when a record last failed and was
	// last written (unix nanoseconds).
	lastFailed, lastWritten atomic.Int64
}

// healthy is false while records fail: since the last failure nothing was
// written.
func (r *recorder) healthy() bool { return r.lastFailed.Load() <= r.lastWritten.Load() }

func newRecorder(c *Clients, size int) *recorder {
	return &recorder{clients: c, queue: make(chan record, size)}
}

// enqueue queues rec, or drops and counts it when the queue is full; it
// reports whether rec was queued.
func (r *recorder) enqueue(rec record) bool {
	select {
	case r.queue <- rec:
		return true
	default:
		recordsDropped.Inc()
		r.lastFailed.Store(time.Now().UnixNano())
		return false
	}
}

// run writes batches until ctx ends, then writes what is queued.
func (r *recorder) run(ctx context.Context) { drain(ctx, r.queue, recordBatch, r.write) }

// write sends a batch as one pipeline of EVALSHA. A pipeline gets no
// NOSCRIPT fallback from go-redis: a record answered NOSCRIPT is written
// again with Run, which loads the script.
func (r *recorder) write(batch []record) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	p := r.clients.Primary.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, rec := range batch {
		cmds[i] = p.EvalSha(ctx, recordScript.Hash(), rec.keys, rec.args...)
	}
	p.Exec(ctx) //nolint:errcheck // each command's error is read below
	for i, c := range cmds {
		err := c.Err()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			err = recordScript.Run(ctx, r.clients.Primary, batch[i].keys, batch[i].args...).Err()
		}
		if err != nil {
			recordsFailed.Inc()
			r.lastFailed.Store(time.Now().UnixNano())
			if sh := batch[i].sh; sh != nil && !batch[i].at.IsZero() {
				sh.lost(batch[i])
			}
		}
		if sh := batch[i].sh; sh != nil {
			sh.written.Store(batch[i].seq) // a shard's records come in order
		}
		if err != nil {
			continue
		}
		recordsWritten.Inc()
		r.lastWritten.Store(time.Now().UnixNano())
	}
}
