package main

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"time"
)

// tailLines is how many of the gateway's last log lines are kept for error
// messages.
const tailLines = 20

// logTail reads the gateway's JSON log: it reports the "serving" line's
// addresses, counts warnings and errors, and keeps the last lines.
type logTail struct {
	mu    sync.Mutex
	lines []string
	warns int            // lines at WARN or ERROR
	msgs  map[string]int // WARN/ERROR lines by message
	done  chan struct{}  // closed when read returns
}

func newLogTail() *logTail { return &logTail{msgs: map[string]int{}, done: make(chan struct{})} }

// logLine is the part of a gateway log line the runner reads.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Proxy string `json:"proxy"`
	Admin string `json:"admin"`
}

// read consumes r until EOF (the child's exit), sending the proxy and admin
// addresses of the first "serving" line to serving. It always drains r, so
// the child never blocks on a full pipe.
func (l *logTail) read(r io.ReadCloser, serving chan<- [2]string) {
	defer close(l.done)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		var ln logLine
		_ = json.Unmarshal(sc.Bytes(), &ln) // a non-JSON line is kept as text
		if ln.Msg == "serving" && !sent {
			serving <- [2]string{ln.Proxy, ln.Admin}
			sent = true
		}
		l.add(sc.Text(), ln)
	}
	_, _ = io.Copy(io.Discard, r) // after an over-long line
}

func (l *logTail) add(text string, ln logLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == tailLines {
		l.lines = append(l.lines[:0], l.lines[1:]...)
	}
	l.lines = append(l.lines, text)
	if ln.Level == "WARN" || ln.Level == "ERROR" {
		l.warns++
		if len(l.msgs) < 20 {
			l.msgs[ln.Msg]++
		} else if _, ok := l.msgs[ln.Msg]; ok {
			l.msgs[ln.Msg]++
		}
	}
}

// tail is the last lines, for error messages. When the child has exited
// it first gives read a moment to take in the final lines.
func (l *logTail) tail() string {
	select {
	case <-l.done:
	case <-time.After(500 * time.Millisecond):
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return "  " + strings.Join(l.lines, "\n  ")
}

// warnings is the count of WARN and ERROR lines so far, and their counts by
// message.
func (l *logTail) warnings() (int, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msgs := make(map[string]int, len(l.msgs))
	for k, v := range l.msgs {
		msgs[k] = v
	}
	return l.warns, msgs
}
