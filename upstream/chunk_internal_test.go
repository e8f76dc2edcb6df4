package upstream

import (
	"bufio"
	"errors"
	"io"
	"net/http/httputil"
	"strings"
	"testing"
)

// FuzzChunkSizeOK: chunkSizeOK takes a first chunk-size line exactly when
// the chunked reader the stream then uses (net/http/httputil's) takes it,
// and never panics.
func FuzzChunkSizeOK(f *testing.F) {
	for _, s := range []string{"5\r", "5;ext=1 \r", "5 ;x\r", "zz\r", "ffffffffffffffffff\r", "0\r", "", "\r", "5", "a\r\r", "00000000000000001\r", " 5\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "\n") || len(line) > 5000 {
			return
		}
		ours := chunkSizeOK([]byte(line)) == nil
		// A header httputil takes leaves it wanting the chunk's data (or,
		// for size 0, the trailer's CRLF): io.ErrUnexpectedEOF.
		r := httputil.NewChunkedReader(bufio.NewReaderSize(strings.NewReader(line+"\n"), 8192))
		_, err := r.Read(make([]byte, 1))
		theirs := errors.Is(err, io.ErrUnexpectedEOF) || err == nil || err == io.EOF
		if ours != theirs {
			t.Fatalf("line %q: chunkSizeOK takes it %v, httputil %v (%v)", line, ours, theirs, err)
		}
	})
}
