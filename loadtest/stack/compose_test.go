package main

import (
	"flag"
	"os"
	"os/exec"
	"testing"

	"github.com/l1gw/l1gw/loadtest/internal/harness"
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
		t.Fatalf("%s is stale: cd loadtest && go test -run TestComposeGatewayConfig ./stack -update", composeGatewayPath)
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
	bin, err := harness.BuildGateway(t.Context(), t.TempDir(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
