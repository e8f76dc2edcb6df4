package harness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// BuildGateway builds the gateway command at pkg (a path relative to the
// caller's directory, such as ../cmd/l1gw) into dir and returns the
// binary's path.
func BuildGateway(ctx context.Context, dir, pkg string) (string, error) {
	bin := filepath.Join(dir, "l1gw")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}
