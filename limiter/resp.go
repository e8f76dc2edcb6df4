package limiter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The decision path speaks RESP2 itself, over connections of its own (see
// pipe.go): encoding a script call into a reused buffer and reading its
// integer-array reply into a fixed array costs no allocation, where a
// go-redis command costs a dozen.

// maxReply is the longest integer array a decision script returns for
// one request: peek.lua's 1 + 4 values per rule.
const maxReply = 1 + 4*MaxRules

// sharedReply is the longest a shared call's reply is: 1 + 3 values per
// rule for each decision of a batch.
const sharedReply = (1 + 3*MaxRules) * maxBatch

// maxBulk is the longest bulk reply the decision path reads: the
// handshake's INFO server is about 2 KB. A longer one is out of step
// (errProtocol), not a reason to allocate what its header claims.
const maxBulk = 1 << 20

// maxDepth is how deeply skipReply follows nested arrays: ROLE's reply
// nests three deep.
const maxDepth = 8

// replyError is an error reply from Redis ("-NOSCRIPT …", "-READONLY …").
type replyError string

func (e replyError) Error() string { return string(e) }

// prefix is the error's first word: NOSCRIPT, READONLY, OOM, MOVED …
func (e replyError) prefix() string {
	for i := 0; i < len(e); i++ {
		if e[i] == ' ' {
			return string(e[:i])
		}
	}
	return string(e)
}

// errProtocol is a reply the decision path cannot read: the connection is
// out of step and must be closed.
var errProtocol = errors.New("limiter: unexpected reply from Redis")

// appendArray starts a command of n arguments.
func appendArray(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// appendBulk appends one string argument.
func appendBulk[S string | []byte](b []byte, s S) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// appendBulkInt appends one integer argument, as Redis wants it: a string.
func appendBulkInt(b []byte, v int64) []byte {
	var num [20]byte
	d := strconv.AppendInt(num[:0], v, 10)
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(d)), 10)
	b = append(b, '\r', '\n')
	b = append(b, d...)
	return append(b, '\r', '\n')
}

// appendKeyArg appends r's key (ruleKey), then suffix (see
// appendKeySuffix), as one argument.
func appendKeyArg(b []byte, prefix, tenant string, r Rule, suffix []byte) []byte {
	infix, tenant := ruleInfix(r), ruleTag(tenant, r)
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(prefix)+len(tenant)+len(infix)+len(r.Name)+len(suffix)+4), 10)
	b = append(b, '\r', '\n')
	b = append(b, prefix...)
	b = append(b, ':', '{')
	b = append(b, tenant...)
	b = append(b, '}', ':')
	b = append(b, infix...)
	b = append(b, r.Name...)
	b = append(b, suffix...)
	return append(b, '\r', '\n')
}

// readLine reads one RESP line without its CRLF. The slice is valid until
// the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, errProtocol
	}
	return line[:len(line)-2], nil
}

// readIntArray reads one reply that must be an array of integers into out
// and returns how many there were. An error reply comes back as a
// replyError, with the connection still in step; any other error means it
// is not.
func readIntArray(r *bufio.Reader, out []int64) (int, error) {
	line, err := readLine(r)
	if err != nil {
		return 0, err
	}
	switch line[0] {
	case '-':
		return 0, replyError(line[1:])
	case '*':
	default:
		return 0, fmt.Errorf("%w: %q", errProtocol, line[0])
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 0 {
		return 0, errProtocol
	}
	var tooLong error
	for i := range n {
		v, err := readInt(r)
		if err != nil {
			return 0, err // an element that is not an integer: out of step
		}
		if i < len(out) {
			out[i] = v
		} else {
			tooLong = fmt.Errorf("%w: %d values", errProtocol, n)
		}
	}
	if tooLong != nil {
		return 0, replyError(tooLong.Error()) // read whole: still in step
	}
	return n, nil
}

// readInt reads one integer reply.
func readInt(r *bufio.Reader) (int64, error) {
	line, err := readLine(r)
	if err != nil {
		return 0, err
	}
	if line[0] != ':' {
		return 0, fmt.Errorf("%w: %q in an integer array", errProtocol, line[0])
	}
	return strconv.ParseInt(string(line[1:]), 10, 64)
}

// readStatus reads a simple-string or bulk reply (the handshake's OK, a
// script's SHA) and returns it; an error reply is a replyError.
func readStatus(r *bufio.Reader) (string, error) {
	line, err := readLine(r)
	if err != nil {
		return "", err
	}
	switch line[0] {
	case '+':
		return string(line[1:]), nil
	case '-':
		return "", replyError(line[1:])
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n < 0 || n > maxBulk {
			return "", errProtocol
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("%w: %q", errProtocol, line[0])
}

// readRole reads ROLE's reply and returns its first element, the role.
func readRole(r *bufio.Reader) (string, error) {
	line, err := readLine(r)
	if err != nil {
		return "", err
	}
	if line[0] == '-' {
		return "", replyError(line[1:])
	}
	if line[0] != '*' {
		return "", errProtocol
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 1 {
		return "", errProtocol
	}
	role, err := readStatus(r)
	if err != nil {
		return "", err
	}
	for range n - 1 {
		if err := skipReply(r, 1); err != nil {
			return "", err
		}
	}
	return role, nil
}

// skipReply reads one reply of any type and drops it; depth is how many
// arrays it is in.
func skipReply(r *bufio.Reader, depth int) error {
	if depth > maxDepth {
		return errProtocol
	}
	line, err := readLine(r)
	if err != nil {
		return err
	}
	switch line[0] {
	case '+', '-', ':':
		return nil
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n > maxBulk {
			return errProtocol
		}
		if n < 0 {
			return nil
		}
		_, err = r.Discard(n + 2)
		return err
	case '*':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil {
			return errProtocol
		}
		for range max(n, 0) {
			if err := skipReply(r, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return errProtocol
}
