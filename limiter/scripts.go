package limiter

import (
	_ "embed"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/args.lua
	argsSrc string
	//go:embed lua/window.lua
	windowSrc string
	//go:embed lua/decide.lua
	decideBody string
	//go:embed lua/usage.lua
	usageBody string
	//go:embed lua/peek.lua
	peekSrc string
	//go:embed lua/record.lua
	recordSrc string
	//go:embed lua/undo.lua
	undoBody string
	//go:embed lua/renew.lua
	renewSrc string
)

// decideSrc and undoSrc are decide.lua and undo.lua with args.lua, the
// head they share, and window.lua joined in; usageSrc is usage.lua with
// window.lua.
var (
	decideSrc = withHead(decideBody, argsSrc, windowSrc)
	undoSrc   = withHead(undoBody, argsSrc, windowSrc)
	usageSrc  = withHead(usageBody, windowSrc)
)

// withHead is script with heads joined in after its shebang line, if it
// has one (Redis reads the flags from the first line only).
func withHead(script string, heads ...string) string {
	head := strings.Join(heads, "\n") + "\n"
	if !strings.HasPrefix(script, "#!") {
		return head + script
	}
	shebang, body, _ := strings.Cut(script, "\n")
	return shebang + "\n" + head + body
}

// The scripts are hashed once; Script.Run sends EVALSHA and falls back to
// EVAL on NOSCRIPT, which is what the first call after a restart, a
// failover or SCRIPT FLUSH gets. Only the recorder pipelines a script, and
// it handles NOSCRIPT itself.
var (
	decideScript = redis.NewScript(decideSrc)
	usageScript  = redis.NewScript(usageSrc)
	peekScript   = redis.NewScript(peekSrc)
	recordScript = redis.NewScript(recordSrc)
	undoScript   = redis.NewScript(undoSrc)
	renewScript  = redis.NewScript(renewSrc)
)
