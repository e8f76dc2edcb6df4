package harness

import (
	"bufio"
	"io"
	"strings"
	"sync"
	"time"
)

// TailLines is how many of a child's last output lines a LogTail keeps
// for error messages.
const TailLines = 20

// LogTail drains a child's output, so the child never blocks on a full
// pipe. It keeps the last TailLines lines, counts the warning lines (those
// key accepts) by key, at most maxKinds distinct keys, and hands the value
// of the first line a match accepts to a channel.
type LogTail struct {
	key      func(line string) (string, bool)
	maxKinds int

	mu    sync.Mutex
	lines []string
	warns int            // every warning line
	kinds map[string]int // warning lines by key
	done  chan struct{}  // closed when Read returns
}

// NewLogTail returns a LogTail counting the lines key accepts.
func NewLogTail(key func(line string) (string, bool), maxKinds int) *LogTail {
	return &LogTail{key: key, maxKinds: maxKinds, kinds: map[string]int{}, done: make(chan struct{})}
}

// Read consumes r until EOF (the child's exit). The value of the first
// line match accepts goes to found (match may be nil).
func (l *LogTail) Read(r io.ReadCloser, match func(line string) (string, bool), found chan<- string) {
	defer close(l.done)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if match != nil {
			if v, ok := match(line); ok {
				found <- v
				match = nil
			}
		}
		l.add(line)
	}
	_, _ = io.Copy(io.Discard, r) // after an over-long line
}

func (l *LogTail) add(line string) {
	k, warn := l.key(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	if warn {
		l.warns++
		if len(l.kinds) < l.maxKinds || l.kinds[k] > 0 {
			l.kinds[k]++
		}
	}
	if len(l.lines) == TailLines {
		l.lines = append(l.lines[:0], l.lines[1:]...)
	}
	l.lines = append(l.lines, line)
}

// Tail is the last lines, for error messages. When the child has exited
// it first gives Read a moment to take in the final lines.
func (l *LogTail) Tail() string {
	select {
	case <-l.done:
	case <-time.After(500 * time.Millisecond):
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return "  " + strings.Join(l.lines, "\n  ")
}

// Warnings is the count of warning lines so far, and a copy of their
// counts by key.
func (l *LogTail) Warnings() (int, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kinds := make(map[string]int, len(l.kinds))
	for k, v := range l.kinds {
		kinds[k] = v
	}
	return l.warns, kinds
}
