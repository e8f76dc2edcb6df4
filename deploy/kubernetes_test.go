package deploy

import (
	"errors"
	"strings"
	"testing"
)

// validate runs every check on a rendered bundle.
func (b *bundle) validate(secretKeys map[string]bool, tmp string) error {
	var errs []error
	errs = append(errs, b.checkSelectors()...)
	errs = append(errs, b.checkServicePorts()...)
	errs = append(errs, b.checkPods(secretKeys)...)
	errs = append(errs, b.checkGateway(tmp)...)
	return errors.Join(errs...)
}

var kustomizations = []string{"base", "overlays/sentinel"}

func TestManifestsAreValid(t *testing.T) {
	tr, keys := readTree(t), secretKeys(t)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			b, err := tr.render(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.validate(keys, t.TempDir()); err != nil {
				t.Errorf("%s:\n%v", dir, err)
			}
		})
	}
}

// TestSentinelOverlay holds what the overlay adds to the base.
func TestSentinelOverlay(t *testing.T) {
	b, err := readTree(t).render("overlays/sentinel")
	if err != nil {
		t.Fatal(err)
	}
	var sets []string
	for _, s := range b.statefulSets {
		sets = append(sets, s.Name)
		if s.Spec.Replicas == nil || *s.Spec.Replicas != 3 {
			t.Errorf("StatefulSet %s: replicas %v; want 3 (a primary and 2 replicas, or 3 sentinels)", s.Name, s.Spec.Replicas)
		}
	}
	if got := strings.Join(sets, ","); got != "l1gw-redis,l1gw-sentinel" {
		t.Errorf("StatefulSets %s; want l1gw-redis,l1gw-sentinel", got)
	}
	g := b.configMaps["l1gw-config"].Data["l1gw.yaml"]
	for _, want := range []string{"mode: sentinel", "sentinel_password_file: /etc/l1gw-secrets/sentinel-password"} {
		if !strings.Contains(g, want) {
			t.Errorf("the overlay's l1gw.yaml has no %q", want)
		}
	}
}
