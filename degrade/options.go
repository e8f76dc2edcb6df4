package degrade

import "time"

// Fail modes for Settings.FailMode.
const (
	// FailOpen admits what could not be checked.
	FailOpen = "open"
	// FailClosed refuses what could not be checked, with 503.
	FailClosed = "closed"
	// FailLocal enforces each rule in memory at limit/expected_gateways.
	FailLocal = "local"
)

// Settings is degrade's part of the ratelimit section of the config.
type Settings struct {
	// Budget is the longest a decision may wait on Redis. Default 10ms.
	Budget time.Duration `koanf:"budget" json:"budget"`
	// FailMode is what happens to a request that could not be checked:
	// "open", "closed" or "local". Default "open".
	FailMode string `koanf:"fail_mode" json:"fail_mode"`
	// ExpectedGateways is how many gateway replicas share the limits;
	// fail mode "local" divides each limit by it. Default 1.
	ExpectedGateways int `koanf:"expected_gateways" json:"expected_gateways"`
	// Breaker stops calling Redis after repeated failures.
	Breaker BreakerOptions `koanf:"breaker" json:"breaker"`
}

// BreakerOptions configures the circuit breaker.
type BreakerOptions struct {
	// Failures in a row that open the breaker. Default 5.
	Failures int `koanf:"failures" json:"failures"`
	// Cooldown is how long the breaker first stays open before a probe.
	// Default 100ms.
	Cooldown time.Duration `koanf:"cooldown" json:"cooldown"`
	// MaxCooldown is the longest it stays open: each opening that follows
	// a failed probe, or comes less than MaxCooldown after the breaker
	// closed, doubles the cooldown up to it. Default 1s; below Cooldown,
	// Cooldown.
	MaxCooldown time.Duration `koanf:"max_cooldown" json:"max_cooldown"`
}
