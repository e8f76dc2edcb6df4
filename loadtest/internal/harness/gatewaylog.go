package harness

import (
	"encoding/json"
	"strings"
)

// maxWarnMsgs bounds the distinct warning messages counted per gateway.
const maxWarnMsgs = 20

// logLine is the part of a gateway log line the runner reads.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Proxy string `json:"proxy"`
	Admin string `json:"admin"`
}

// newLogTail reads the gateway's JSON log: it counts WARN and ERROR lines
// by message and keeps the last lines.
func newLogTail() *LogTail {
	return NewLogTail(func(line string) (string, bool) {
		var ln logLine
		if json.Unmarshal([]byte(line), &ln) != nil || (ln.Level != "WARN" && ln.Level != "ERROR") {
			return "", false
		}
		return ln.Msg, true
	}, maxWarnMsgs)
}

// servingLine matches the gateway's "serving" line: its proxy and admin
// addresses, space-separated.
func servingLine(line string) (string, bool) {
	if !strings.Contains(line, `"serving"`) {
		return "", false
	}
	var ln logLine
	if json.Unmarshal([]byte(line), &ln) != nil || ln.Msg != "serving" {
		return "", false
	}
	return ln.Proxy + " " + ln.Admin, true
}
