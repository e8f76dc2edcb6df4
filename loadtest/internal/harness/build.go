package harness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// BuildGateway builds cmd/l1gw into dir and returns the binary's path.
// root is the repository's root relative to the caller's directory (such
// as ../..). The build runs there, in the gateway's own module, so the
// binary has the dependency versions of the gateway's go.mod, not those
// of this module.
func BuildGateway(ctx context.Context, dir, root string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, "l1gw"))
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/l1gw")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/l1gw in %s: %v\n%s", root, err, out)
	}
	return bin, nil
}
