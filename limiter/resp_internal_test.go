package limiter

import (
	"bufio"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func replyReader(s string) *bufio.Reader {
	return bufio.NewReaderSize(strings.NewReader(s), 4096)
}

// TestReadersRefuseWhatTheyCannotHold: a reply whose header promises more
// than the decision path ever reads, or arrays nested past any reply it
// expects, is out of step (errProtocol) at once: no allocation of what the
// header claims, no panic, no recursion as deep as the reply.
func TestReadersRefuseWhatTheyCannotHold(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, header := range []string{"$1073741824\r\n", "$9223372036854775807\r\n", "$4611686018427387904\r\n"} {
		if _, err := readStatus(replyReader(header)); !errors.Is(err, errProtocol) {
			t.Errorf("readStatus(%q) = %v, want errProtocol", header, err)
		}
		if err := skipReply(replyReader(header), 0); !errors.Is(err, errProtocol) {
			t.Errorf("skipReply(%q) = %v, want errProtocol", header, err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("reading three bulk headers allocated %d bytes", grew)
	}

	deep := strings.Repeat("*1\r\n", 100_000) + ":1\r\n"
	if err := skipReply(replyReader(deep), 0); !errors.Is(err, errProtocol) {
		t.Errorf("skipReply of arrays 100 000 deep = %v, want errProtocol", err)
	}
	if _, err := readRole(replyReader("*2\r\n$6\r\nmaster\r\n" + deep)); !errors.Is(err, errProtocol) {
		t.Errorf("readRole with arrays 100 000 deep = %v, want errProtocol", err)
	}
}

// TestReadersReadWhatRedisSends: the replies the decision path does read
// still come through whole, and leave the reader at the next reply.
func TestReadersReadWhatRedisSends(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nrun_id:" + strings.Repeat("a", 40) + "\r\n"
	r := replyReader("$" + strconv.Itoa(len(info)) + "\r\n" + info + "\r\n+OK\r\n")
	if got, err := readStatus(r); err != nil || got != info {
		t.Fatalf("readStatus(INFO) = %q, %v", got, err)
	}
	if got, err := readStatus(r); err != nil || got != "OK" {
		t.Fatalf("readStatus after INFO = %q, %v", got, err)
	}

	// ROLE of a primary with two replicas, then an integer array.
	role := "*3\r\n$6\r\nmaster\r\n:3129659\r\n*2\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$7\r\n3129242\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9002\r\n$7\r\n3129543\r\n"
	r = replyReader(role + "*3\r\n:1\r\n:-2\r\n:3\r\n")
	if got, err := readRole(r); err != nil || got != "master" {
		t.Fatalf("readRole = %q, %v", got, err)
	}
	var out [4]int64
	if n, err := readIntArray(r, out[:]); err != nil || n != 3 || out != [4]int64{1, -2, 3, 0} {
		t.Fatalf("readIntArray after ROLE = %d %v, %v", n, out, err)
	}

	// A bulk at the bound is read; one byte past it is not.
	big := strings.Repeat("x", maxBulk)
	if got, err := readStatus(replyReader("$" + strconv.Itoa(maxBulk) + "\r\n" + big + "\r\n")); err != nil || len(got) != maxBulk {
		t.Fatalf("readStatus of maxBulk bytes = %d bytes, %v", len(got), err)
	}
	if _, err := readStatus(replyReader("$" + strconv.Itoa(maxBulk+1) + "\r\n" + big + "x\r\n")); !errors.Is(err, errProtocol) {
		t.Fatalf("readStatus of maxBulk+1 bytes = %v, want errProtocol", err)
	}
}

// FuzzReplyReaders: whatever Redis (or whatever answers in its place)
// sends, the readers return an error or a value, never panic, and never
// hand back more than was sent.
func FuzzReplyReaders(f *testing.F) {
	for _, s := range []string{
		"*3\r\n:1\r\n:2\r\n:3\r\n",
		"-NOSCRIPT No matching script.\r\n",
		"+OK\r\n",
		"$5\r\nhello\r\n",
		"$-1\r\n",
		"*-1\r\n",
		"*2\r\n$6\r\nmaster\r\n*1\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n:1\r\n",
		"$99999999999999999999\r\n",
		"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
		":9223372036854775808\r\n",
		"*2\r\n:1\r\n$1\r\nx\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var out [maxReply]int64
		if n, err := readIntArray(replyReader(s), out[:]); err == nil && (n < 0 || n > len(out)) {
			t.Fatalf("readIntArray(%q) = %d values into %d", s, n, len(out))
		}
		if got, err := readStatus(replyReader(s)); err == nil && len(got) > len(s) {
			t.Fatalf("readStatus(%q) returned %d bytes", s, len(got))
		}
		if got, err := readRole(replyReader(s)); err == nil && len(got) > len(s) {
			t.Fatalf("readRole(%q) returned %d bytes", s, len(got))
		}
		_ = skipReply(replyReader(s), 0)
	})
}
