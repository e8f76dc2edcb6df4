package config

import (
	"fmt"
	"testing"
)

// TestRedisKeysFromTheStruct: the keys the memory-mode check reports are
// the redis section's own, all but mode and addrs (the list was written
// out by hand before).
func TestRedisKeysFromTheStruct(t *testing.T) {
	want := []string{"master_name", "local_replicas", "username", "password", "password_file", "sentinel_username",
		"sentinel_password", "sentinel_password_file", "db", "tls", "dial_timeout", "pool_size", "read_timeout", "write_timeout",
		"pool_timeout", "max_retries", "min_idle_conns", "decision_conns"}
	if fmt.Sprint(redisKeys) != fmt.Sprint(want) {
		t.Fatalf("redisKeys %v; want %v", redisKeys, want)
	}
}
