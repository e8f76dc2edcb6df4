package logsample

import (
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	e := New(time.Hour)
	if d, ok := e.Allow(); !ok || d != 0 {
		t.Fatalf("first line: %d, %v; want it through", d, ok)
	}
	for range 3 {
		if _, ok := e.Allow(); ok {
			t.Fatal("a second line within the interval went through")
		}
	}
	e.last = e.last.Add(-2 * time.Hour)
	if d, ok := e.Allow(); !ok || d != 3 {
		t.Fatalf("after the interval: %d, %v; want through with 3 dropped", d, ok)
	}
}
