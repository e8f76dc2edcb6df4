package limiter

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/decide.lua
	decideSrc string
	//go:embed lua/usage.lua
	usageSrc string
	//go:embed lua/peek.lua
	peekSrc string
	//go:embed lua/record.lua
	recordSrc string
	//go:embed lua/undo.lua
	undoSrc string
)

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
)
