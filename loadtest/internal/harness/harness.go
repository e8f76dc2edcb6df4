// Package harness is what l1gw's load runners (loadtest, loadtest/chaos,
// loadtest/benchcompare) share to drive the gateway binary: its config,
// build, child process and log; the in-process upstream it forwards to; the
// vegeta attacker and the loopback-only guard on every address attacked;
// /proc readings of a process's CPU and memory; and the report's machine
// line, files and main. It is for those runners only.
package harness

import (
	"fmt"
	"net"
	"strings"
)

// CheckLoopback refuses any address but 127.0.0.1:port: the runners
// attack nothing else.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("address %q is not 127.0.0.1; the load runners attack only loopback", addr)
	}
	return nil
}

// GatewayEnv is environ without L1GW_* variables, which would override the
// config file a runner writes for the gateway.
func GatewayEnv(environ []string) []string {
	env := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "L1GW_") {
			env = append(env, kv)
		}
	}
	return env
}
