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
)

// The scripts are hashed once; Script.Run sends EVALSHA and falls back to
// EVAL on NOSCRIPT, which is what the first call after a restart, a
// failover or SCRIPT FLUSH gets. They are never sent inside a pipeline,
// where that fallback does not happen.
var (
	decideScript = redis.NewScript(decideSrc)
	usageScript  = redis.NewScript(usageSrc)
)
