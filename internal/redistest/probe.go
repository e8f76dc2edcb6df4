package redistest

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// probe runs f against addr with a fresh, short-lived client. A fresh client
// per probe keeps go-redis' cached dial errors (a pool whose dials failed
// PoolSize times answers with the last error for up to a second) out of the
// polling loops.
func probe(addr string, f func(ctx context.Context, c *redis.Client) error) error {
	c := redis.NewClient(&redis.Options{
		Addr:            addr,
		Protocol:        2,
		DialTimeout:     probeTimeout,
		DialerRetries:   1, // poll retries; go-redis would add 5 dials 100ms apart
		ReadTimeout:     probeTimeout,
		WriteTimeout:    probeTimeout,
		MaxRetries:      -1,
		PoolSize:        1,
		DisableIdentity: true,
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*probeTimeout)
	defer cancel()
	return f(ctx, c)
}

// info returns one INFO section of the server at addr as key/value pairs.
func info(addr, section string) (map[string]string, error) {
	var text string
	err := probe(addr, func(ctx context.Context, c *redis.Client) error {
		var err error
		text, err = c.Info(ctx, section).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("INFO %s on %s: %w", section, addr, err)
	}
	return parseInfo(text), nil
}

// parseInfo returns the "key:value" lines of an INFO or CLUSTER INFO reply.
func parseInfo(text string) map[string]string {
	kv := make(map[string]string)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			kv[k] = v
		}
	}
	return kv
}

// role returns the first element of ROLE on addr: "master", "slave" or
// "sentinel".
func role(addr string) (string, error) {
	var r string
	err := probe(addr, func(ctx context.Context, c *redis.Client) error {
		reply, err := c.Do(ctx, "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(reply) == 0 {
			return fmt.Errorf("empty ROLE reply")
		}
		s, ok := reply[0].(string)
		if !ok {
			return fmt.Errorf("ROLE reply starts with %T, not a string", reply[0])
		}
		r = s
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("ROLE on %s: %w", addr, err)
	}
	return r, nil
}

// checkReplicaOf reports nil when the server at addr is a replica of
// primaryPort with its link up.
func checkReplicaOf(addr string, primaryPort int) error {
	kv, err := info(addr, "replication")
	if err != nil {
		return err
	}
	want := fmt.Sprint(primaryPort)
	if kv["role"] != "slave" || kv["master_port"] != want || kv["master_link_status"] != "up" {
		return fmt.Errorf("%s: role:%s master_port:%s master_link_status:%s; want slave of port %s with link up",
			addr, kv["role"], kv["master_port"], kv["master_link_status"], want)
	}
	return nil
}
