package upstream

import (
	"bufio"
	"bytes"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// FuzzStripResponseSkipsOnlyWhatIsNotThere: for any response header
// block, StripResponseHopByHop leaves the same fields as running every
// deletion does, though it deletes only when it finds a hop-by-hop field;
// and of every name it keeps, all the lines, in the order sent.
func FuzzStripResponseSkipsOnlyWhatIsNotThere(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain\r\nX-A: 1\r\n",
		"Connection: close\r\n",
		"Connection: X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n",
		"keep-alive: timeout=5\r\nX-A: 1\r\n",
		"Transfer-Encoding: chunked\r\nTrailer: X-T\r\n",
		"Set-Cookie: a=1\r\nUpgrade: h2c\r\n",
		"Keep-Alive: timeout=5\r\nLink: <a>\r\nX-A: 1\r\nLink: <b>\r\n",
		"Connection: X-Hop\r\nX-Hop: 1\r\nVary: a\r\nVary: b\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		read := func() *fasthttp.ResponseHeader {
			var h fasthttp.ResponseHeader
			if h.Read(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n"+block+"\r\n"))) != nil {
				return nil
			}
			return &h
		}
		sent := read()
		if sent == nil {
			return
		}
		skip, every := read(), read()
		StripResponseHopByHop(skip)
		everyDeletion(every)
		if a, b := byName(skip), byName(every); a != b {
			t.Fatalf("the block\n%q\nleaves\n%s\nthrough the skip, but\n%s\nwith every deletion", block, a, b)
		}
		// Whatever is kept of a name is all of it, in the order sent.
		for k := range skip.All() {
			got, want := bytes.Join(skip.PeekAll(string(k)), []byte(" | ")), bytes.Join(sent.PeekAll(string(k)), []byte(" | "))
			if !bytes.Equal(got, want) {
				t.Fatalf("the block\n%q\nleaves %s %q; it was sent as %q", block, k, got, want)
			}
		}
	})
}

// everyDeletion is CleanResponse without its skip: every deletion, then
// the order put back.
func everyDeletion(h *fasthttp.ResponseHeader) {
	var lines []field
	for k, v := range h.All() {
		lines = append(lines, field{name: bytes.Clone(k), value: bytes.Clone(v)})
	}
	stripResponse(h)
	if len(lines) <= maxOrdered {
		restoreResponseOrder(h, lines)
	}
}

// byName is h's fields, one line per name in sorted order, with its
// values in order: not h.Header(), which adds the Date of now, and not
// in h's order, which deletions change.
func byName(h *fasthttp.ResponseHeader) string {
	values := map[string][]string{}
	for k, v := range h.All() {
		name := http.CanonicalHeaderKey(string(k))
		values[name] = append(values[name], string(v))
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(values)) {
		b.WriteString(name + ": " + strings.Join(values[name], " | ") + "\n")
	}
	return b.String()
}

// TestCleanResponseKeepsTheOrderOfRepeatedFields: deleting a hop-by-hop
// field, or a field of the gateway's own, moves the last field into its
// place; the lines of a name sent more than once stay in the order sent,
// and every copy of a field of the gateway's own goes.
func TestCleanResponseKeepsTheOrderOfRepeatedFields(t *testing.T) {
	own := func(name []byte) bool { return bytes.EqualFold(name, []byte("X-Own")) }
	cases := []struct {
		name, block string
		own         func([]byte) bool
		want        map[string]string // name: its values joined by " | "
	}{
		{"hop-by-hop first", "Keep-Alive: timeout=5\r\nLink: <a>\r\nX-A: 1\r\nLink: <b>\r\n", nil,
			map[string]string{"Link": "<a> | <b>", "X-A": "1", "Keep-Alive": ""}},
		{"named by Connection", "Connection: X-Hop\r\nX-Hop: 1\r\nVary: a\r\nVary: b\r\nVary: c\r\n", nil,
			map[string]string{"Vary": "a | b | c", "X-Hop": ""}},
		{"own fields, twice", "Link: <a>\r\nX-Own: 1\r\nLink: <b>\r\nX-Own: 2\r\nLink: <c>\r\n", own,
			map[string]string{"Link": "<a> | <b> | <c>", "X-Own": ""}},
		{"own and hop-by-hop", "X-Own: 1\r\nVia: one\r\nKeep-Alive: x\r\nVia: two\r\nX-Own: 2\r\nVia: three\r\n", own,
			map[string]string{"Via": "one | two | three", "X-Own": "", "Keep-Alive": ""}},
	}
	for _, tc := range cases {
		var h fasthttp.ResponseHeader
		if err := h.Read(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n" + tc.block + "\r\n"))); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		CleanResponse(&h, tc.own)
		for name, want := range tc.want {
			if got := string(bytes.Join(h.PeekAll(name), []byte(" | "))); got != want {
				t.Errorf("%s: %s %q; want %q", tc.name, name, got, want)
			}
		}
	}
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

// TestCleanResponseDoesNotAllocate: a response with a hop-by-hop field,
// or a field of the gateway's own, is cleaned without allocating (the
// copy of its fields stays on the stack), as one without either is.
func TestCleanResponseDoesNotAllocate(t *testing.T) {
	own := func(name []byte) bool { return bytes.EqualFold(name, []byte("X-Own")) }
	for _, block := range []string{
		"X-A: 1\r\nX-B: 2\r\n",
		"Keep-Alive: timeout=5\r\nX-A: 1\r\nLink: <a>\r\n",
		"X-Own: 1\r\nX-A: 1\r\nConnection: X-Hop\r\nX-Hop: 1\r\n",
	} {
		var src fasthttp.ResponseHeader
		if err := src.Read(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + block + "\r\n"))); err != nil {
			t.Fatal(err)
		}
		var h fasthttp.ResponseHeader
		allocs := testing.AllocsPerRun(100, func() {
			src.CopyTo(&h)
			CleanResponse(&h, own)
		})
		if allocs != 0 {
			t.Errorf("%q: %.1f allocations per response; want 0", block, allocs)
		}
	}
}

// TestCleanResponseStopsOnAFieldItCannotDelete: fasthttp answers a
// default Content-Type after DelBytes removed it, so a field of the
// gateway's own that fasthttp keeps apart would loop CleanResponse
// forever without its bound.
func TestCleanResponseStopsOnAFieldItCannotDelete(t *testing.T) {
	var h fasthttp.ResponseHeader
	if err := h.Read(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Type: text/html\r\nX-A: 1\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		CleanResponse(&h, func(name []byte) bool { return bytes.EqualFold(name, []byte("Content-Type")) })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("CleanResponse still deleting after 10 s")
	}
	if got := string(h.Peek("X-A")); got != "1" {
		t.Errorf("X-A %q; want 1", got)
	}
}
