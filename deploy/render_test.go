package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// bundle is one rendered kustomization, every object decoded strictly.
type bundle struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	netpols      []*networkingv1.NetworkPolicy
	monitors     []*monitoringv1.ServiceMonitor
}

// tree is deploy/kubernetes copied into memory, so a test can change a
// file before rendering; it is keyed by the path under kubernetes/.
type tree map[string]string

func readTree(t *testing.T) tree {
	t.Helper()
	out := tree{}
	root := os.DirFS("kubernetes")
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("read kubernetes/: %v", err)
	}
	return out
}

// render builds the kustomization in dir (a path under kubernetes/) and
// decodes what it produces.
func (tr tree) render(dir string) (*bundle, error) {
	mem := filesys.MakeFsInMemory()
	for p, body := range tr {
		if err := mem.WriteFile(path.Join("/kubernetes", p), []byte(body)); err != nil {
			return nil, err
		}
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, path.Join("/kubernetes", dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	b := &bundle{configMaps: map[string]*corev1.ConfigMap{}}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		if err := b.add(r.GetGvk().ApiVersion(), r.GetKind(), y); err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.GetKind(), r.GetName(), err)
		}
	}
	return b, nil
}

// add decodes one object strictly: an unknown or duplicated field is an
// error, as is a kind this bundle does not expect.
func (b *bundle) add(apiVersion, kind string, y []byte) error {
	decode := func(into any) error { return yaml.UnmarshalStrict(y, into) }
	var err error
	switch apiVersion + "/" + kind {
	case "apps/v1/Deployment":
		err = decodeInto(decode, &b.deployments)
	case "apps/v1/StatefulSet":
		err = decodeInto(decode, &b.statefulSets)
	case "v1/Service":
		err = decodeInto(decode, &b.services)
	case "v1/ConfigMap":
		var cm corev1.ConfigMap
		err = decode(&cm)
		b.configMaps[cm.Name] = &cm
	case "policy/v1/PodDisruptionBudget":
		err = decodeInto(decode, &b.pdbs)
	case "autoscaling/v2/HorizontalPodAutoscaler":
		err = decodeInto(decode, &b.hpas)
	case "networking.k8s.io/v1/NetworkPolicy":
		err = decodeInto(decode, &b.netpols)
	case "monitoring.coreos.com/v1/ServiceMonitor":
		err = decodeInto(decode, &b.monitors)
	default:
		return fmt.Errorf("unexpected kind %s/%s", apiVersion, kind)
	}
	return err
}

func decodeInto[T any](decode func(any) error, list *[]*T) error {
	v := new(T)
	if err := decode(v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// secretKeys are the keys of the Secret l1gw-credentials, which is not in
// the manifests (it is created by hand): read from the README's
// `kubectl create secret generic l1gw-credentials` command.
func secretKeys(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	in := false
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "create secret generic l1gw-credentials") {
			in = true
		}
		if !in {
			continue
		}
		for _, f := range strings.Fields(line) {
			for _, pre := range []string{"--from-literal=", "--from-file="} {
				if k, ok := strings.CutPrefix(f, pre); ok {
					keys[strings.SplitN(k, "=", 2)[0]] = true
				}
			}
		}
		if !strings.HasSuffix(strings.TrimSpace(line), `\`) {
			in = false
		}
	}
	if len(keys) == 0 {
		t.Fatal("README.md: no `kubectl create secret generic l1gw-credentials` command with --from-literal=KEY=…")
	}
	return keys
}
