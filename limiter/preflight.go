package limiter

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// LoadScripts loads every script the limiter runs (SCRIPT LOAD) on the
// primary (in Cluster, on every primary) and checks that Redis names each
// by the SHA the limiter sends with EVALSHA. Decisions never need it, since
// a NOSCRIPT reloads the script; `l1gw doctor` calls it to prove the
// scripts compile and redis.username may load them.
func (c *Clients) LoadScripts(ctx context.Context) error {
	scripts := []struct {
		name string
		s    *redis.Script
		src  string
	}{
		{"decide.lua", decideScript, decideSrc}, {"usage.lua", usageScript, usageSrc},
		{"peek.lua", peekScript, peekSrc}, {"record.lua", recordScript, recordSrc},
	}
	for _, sc := range scripts {
		sha, err := c.Primary.ScriptLoad(ctx, sc.src).Result()
		if err != nil {
			return fmt.Errorf("SCRIPT LOAD %s: %w", sc.name, err)
		}
		if sha != sc.s.Hash() {
			return fmt.Errorf("SCRIPT LOAD %s: Redis names it %s; want %s", sc.name, sha, sc.s.Hash())
		}
	}
	return nil
}

// NodeClient is a client to the one node at addr, with c's credentials,
// TLS and timeouts: for asking a given node (ROLE, INFO, CONFIG GET) where
// c's own clients route for themselves. The caller closes it.
func (c *Clients) NodeClient(addr string) *redis.Client {
	return redis.NewClient(nodeOptions(c.opts, addr, c.tls))
}

// Sentinels are the clients c asks the sentinels with, one per address in
// redis.addrs, in that order; nil outside Sentinel mode. They are c's:
// Close closes them.
func (c *Clients) Sentinels() []*redis.SentinelClient {
	if c.sentinels == nil {
		return nil
	}
	return c.sentinels.clients
}
