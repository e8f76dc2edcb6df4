package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/compose/l1gw.yaml")

const composeGatewayPath = "../../deploy/compose/l1gw.yaml"

// TestComposeGatewayConfig: deploy/compose/l1gw.yaml is what the stack's
// config generator writes, and `l1gw check-config` accepts it.
func TestComposeGatewayConfig(t *testing.T) {
	want, err := composeGatewayYAML()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(composeGatewayPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(composeGatewayPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is stale: go test -run TestComposeGatewayConfig ./loadtest/stack -update", composeGatewayPath)
	}
	bin := gatewayBinary(t)
	out, err := exec.Command(bin, "check-config", "--config", composeGatewayPath).CombinedOutput()
	if err != nil {
		t.Fatalf("l1gw check-config %s: %v\n%s", composeGatewayPath, err, out)
	}
}

// gatewayBinary builds cmd/l1gw into a temporary directory.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "l1gw")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/l1gw").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ../../cmd/l1gw: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	return bin
}
