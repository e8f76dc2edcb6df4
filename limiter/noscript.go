package limiter

import (
	"fmt"
	"slices"
)

// reload loads the scripts a node answered NOSCRIPT for (a restart, a
// failover, SCRIPT FLUSH) and sends those ops again.
func (l *lane) reload() error {
	redo := append([]*op(nil), l.redo...)
	l.redo = l.redo[:0]
	c := l.c
	if c == nil {
		return fmt.Errorf("limiter: %d decisions answered NOSCRIPT on a connection since dropped", len(redo))
	}
	var b []byte
	loaded := map[string]bool{}
	for _, o := range redo {
		if src := o.script(); !loaded[src] {
			loaded[src] = true
			b = appendBulk(appendBulk(appendArray(b, 3), "SCRIPT"), "LOAD")
			b = appendBulk(b, src)
		}
	}
	if h := l.p.cfg.reloadHook; h != nil {
		h(l)
	}
	l.mark(c) // the SCRIPT LOAD is a new call: judged from its own write
	l.setPhase(phaseWriting, redo)
	if err := c.write(b); err != nil {
		return err
	}
	l.setPhase(phaseReading, redo)
	for range loaded {
		if _, err := readStatus(c.r); err != nil {
			return fmt.Errorf("SCRIPT LOAD on %s: %w", c.addr, err)
		}
	}
	_, err := l.roundTrip(redo)
	l.redo = l.redo[:0] // a second NOSCRIPT is not retried
	if err == nil {
		// Those of a mixed call's failed group go again alone (serve).
		left := redo[:0]
		for _, o := range redo {
			if !slices.Contains(l.alone, o) {
				left = append(left, o)
			}
		}
		settlePending(left, fmt.Errorf("limiter: %s answered NOSCRIPT after SCRIPT LOAD", c.addr))
	}
	return err
}
