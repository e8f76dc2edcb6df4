package main

import (
	"fmt"
	"io"
	"net"
	"strings"
)

// printSummary tells the user what runs where and how to break it.
func printSummary(w io.Writer, st *State, statePath string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	_, port, _ := net.SplitHostPort(st.Primary.Addr)
	p("")
	p("l1gw stack is up (state in %s; Ctrl-C or make stack-down stops it)", statePath)
	p("  redis primary   %s  pid %d", st.Primary.Addr, st.Primary.Pid)
	for i, r := range st.Replicas {
		p("  redis replica %d %s  pid %d", i+1, r.Addr, r.Pid)
	}
	var sentinels []string
	for _, s := range st.Sentinels {
		sentinels = append(sentinels, s.Addr)
	}
	p("  sentinels       %s  (master name %q)", strings.Join(sentinels, " "), st.MasterName)
	p("  demo upstream   %s  pid %d", st.Upstream.Addr, st.Upstream.Pid)
	for i, g := range st.Gateways {
		p("  gateway %d       proxy %s  admin %s  pid %d", i+1, g.Proxy, g.Admin, g.Pid)
	}
	p("  keys            %s%04d … %s%04d (tenants t0000 … t%04d: %d/s, %d/min), listed in %s",
		st.KeyPrefix, 0, st.KeyPrefix, st.Tenants-1, st.Tenants-1, standardPerSecond, standardPerMinute, st.KeysFile)
	p("                  %s (tenant demo, same plan), %s (tenant abuser: %d/s)", st.DemoKey, st.AbuserKey, smallPerSecond)
	p("")
	p("Try:")
	p("  curl -i -H 'X-API-Key: %s' http://%s/hello", st.DemoKey, st.Gateways[0].Proxy)
	p("  redis-cli -p %s SENTINEL get-master-addr-by-name %s", sentinelPort(st), st.MasterName)
	p("Kill the primary by hand (the sentinels fail over after 1 s):")
	p("  redis-cli -p %s DEBUG SLEEP 30     # stall it 30 s", port)
	p("  kill -STOP %d; sleep 10; kill -CONT %d     # freeze it, then resume", st.Primary.Pid, st.Primary.Pid)
	p("  kill -9 %d     # kill it (not restarted; make stack-down, make stack to start over)", st.Primary.Pid)
	p("")
}

// sentinelPort is the first sentinel's port.
func sentinelPort(st *State) string {
	if len(st.Sentinels) == 0 {
		return "?"
	}
	_, port, _ := net.SplitHostPort(st.Sentinels[0].Addr)
	return port
}
