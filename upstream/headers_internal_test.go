package upstream

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzStripResponseSkipsOnlyWhatIsNotThere: for any response header
// block, StripResponseHopByHop leaves the same fields as running every
// deletion does, though it deletes only when it finds a hop-by-hop field.
func FuzzStripResponseSkipsOnlyWhatIsNotThere(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain\r\nX-A: 1\r\n",
		"Connection: close\r\n",
		"Connection: X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n",
		"keep-alive: timeout=5\r\nX-A: 1\r\n",
		"Transfer-Encoding: chunked\r\nTrailer: X-T\r\n",
		"Set-Cookie: a=1\r\nUpgrade: h2c\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		var got [2]string
		for i, strip := range []func(*fasthttp.ResponseHeader){StripResponseHopByHop, stripResponse} {
			var h fasthttp.ResponseHeader
			if h.Read(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n"+block+"\r\n"))) != nil {
				return
			}
			strip(&h)
			var b strings.Builder // not h.Header(): it adds the Date of now
			for k, v := range h.All() {
				b.WriteString(string(k) + ": " + string(v) + "\n")
			}
			got[i] = b.String()
		}
		if got[0] != got[1] {
			t.Fatalf("the block\n%q\nleaves\n%s\nthrough the skip, but\n%s\nwith every deletion", block, got[0], got[1])
		}
	})
}

// TestRestoreOrder: after deletions moved them, the lines of a repeated
// name go back in the order sent, folded ones joined as fasthttp joins
// them; a name whose values changed keeps the order it has.
func TestRestoreOrder(t *testing.T) {
	cases := []struct {
		name, block, del string
		want             map[string]string // name: its values joined by " | "
	}{
		{"moved by a deletion", "X-Del: 1\r\nVia: one\r\nA: 1\r\nVia: two\r\n", "X-Del",
			map[string]string{"Via": "one | two", "A": "1"}},
		{"two names", "X-Del: 1\r\nB: 1\r\nVia: one\r\nB: 2\r\nVia: two\r\nX-Del: 2\r\nB: 3\r\n", "X-Del",
			map[string]string{"Via": "one | two", "B": "1 | 2 | 3"}},
		{"folded", "X-Del: 1\r\nVia: one\r\n  more\r\nA: 1\r\nVia: two\r\n", "X-Del",
			map[string]string{"Via": "one more | two"}},
		{"any case", "X-Del: 1\r\nvia: one\r\nA: 1\r\nVIA: two\r\n", "X-Del",
			map[string]string{"Via": "one | two"}},
	}
	for _, tc := range cases {
		var r fasthttp.Request
		if err := r.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: gw\r\n" + tc.block + "\r\n"))); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r.Header.Del(tc.del)
		RestoreOrder(&r.Header)
		for name, want := range tc.want {
			if got := string(bytes.Join(r.Header.PeekAll(name), []byte(" | "))); got != want {
				t.Errorf("%s: %s %q; want %q", tc.name, name, got, want)
			}
		}
	}

	// Changed since sent: left in the order it has.
	var r fasthttp.Request
	if err := r.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: gw\r\nX-Del: 1\r\nVia: one\r\nB: 1\r\nVia: two\r\nB: 2\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	r.Header.Del("X-Del") // B: 2 takes its place
	r.Header.Add("Via", "three")
	RestoreOrder(&r.Header)
	if got := string(bytes.Join(r.Header.PeekAll("Via"), []byte(" | "))); got != "one | two | three" {
		t.Errorf("Via, one added: %q; want it as it was, one | two | three", got)
	}
	if got := string(bytes.Join(r.Header.PeekAll("B"), []byte(" | "))); got != "1 | 2" {
		t.Errorf("B beside a changed Via: %q; want 1 | 2", got)
	}
}
