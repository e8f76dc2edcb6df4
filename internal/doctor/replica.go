package doctor

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// maxLastIO is the longest a replica may go without hearing from its
// primary: the README's min-replicas-max-lag.
const maxLastIO = 10

// checkReplica checks that the node at addr replicates from primary, with
// its link up, and reports how far behind it is. primaryOffset is the
// primary's master_repl_offset (-1: unknown).
func (d *doctor) checkReplica(ctx context.Context, primary, addr string, primaryOffset int64) {
	cl := d.c.NodeClient(addr)
	defer cl.Close()
	role, err := cl.Do(ctx, "ROLE").Slice()
	if err != nil {
		d.r.add(Warn, "start it, or tell the sentinels it is gone (SENTINEL RESET "+d.o.Redis.MasterName+")",
			"replica %s does not answer ROLE: %v", addr, err)
		return
	}
	name, _ := role[0].(string)
	if name != "slave" || len(role) < 3 {
		d.r.add(Error, "REPLICAOF the primary on it, or let Sentinel reconfigure it",
			"replica %s says ROLE %s, not a replica of %s", addr, name, primary)
		return
	}
	host, _ := role[1].(string)
	port, _ := role[2].(int64)
	if of := net.JoinHostPort(host, strconv.FormatInt(port, 10)); of != primary {
		d.r.add(Error, "REPLICAOF "+strings.Replace(primary, ":", " ", 1)+" on it, or let Sentinel reconfigure it",
			"replica %s replicates from %s, not from the primary %s", addr, of, primary)
		return
	}
	if kv, err := infoSection(ctx, cl, "replication"); err != nil {
		d.r.add(Warn, "allow redis.username +info", "replica %s: cannot read its link: %v", addr, err)
	} else {
		d.reportLink(addr, primary, kv, primaryOffset)
	}
	d.checkSettings(ctx, cl, addr, 0, false)
}

// reportLink reports a replica's link to its primary and its lag.
func (d *doctor) reportLink(addr, primary string, kv map[string]string, primaryOffset int64) {
	if link := kv["master_link_status"]; link != "up" {
		d.r.add(Error, "read the replica's log: a full sync that fails, a primary it cannot reach, or auth (masterauth)",
			"replica %s: master_link_status %s: it does not follow %s", addr, link, primary)
		return
	}
	lastIO, _ := strconv.ParseInt(kv["master_last_io_seconds_ago"], 10, 64)
	lag := "unknown"
	if off, err := strconv.ParseInt(kv["slave_repl_offset"], 10, 64); err == nil && primaryOffset >= 0 {
		lag = strconv.FormatInt(max(primaryOffset-off, 0), 10) + " bytes"
	}
	if lastIO > maxLastIO {
		d.r.add(Warn, "check the network to the primary and the replica's load",
			"replica %s: last heard from %s %d s ago (lag %s); min-replicas-max-lag is 10 s", addr, primary, lastIO, lag)
		return
	}
	d.r.add(OK, "", "replica %s of %s: link up, lag %s, last I/O %d s ago", addr, primary, lag, lastIO)
}

// replOffset is the primary's master_repl_offset; -1 when unknown.
func replOffset(ctx context.Context, cl *redis.Client) int64 {
	kv, err := infoSection(ctx, cl, "replication")
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(kv["master_repl_offset"], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// infoSection is one INFO section as key/value pairs.
func infoSection(ctx context.Context, cl *redis.Client, section string) (map[string]string, error) {
	text, err := cl.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			kv[k] = v
		}
	}
	return kv, nil
}
