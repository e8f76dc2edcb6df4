package deploy

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/l1gw/l1gw/config"
)

// gateway is the l1gw Deployment's pod and container, with its config
// loaded through config.Load as the container would load it.
type gateway struct {
	pod
	c        corev1.Container
	replicas int32
	cfg      *config.Config
}

// checkGateway runs the checks that need the gateway's own config;
// tmp is a directory for the config file and the Secret's files.
func (b *bundle) checkGateway(tmp string) []error {
	d := b.deployment("l1gw")
	if d == nil {
		return []error{fmt.Errorf("no Deployment l1gw")}
	}
	g := gateway{pod: pod{"Deployment l1gw", d.Spec.Template.Labels, &d.Spec.Template.Spec}, replicas: 1}
	if d.Spec.Replicas != nil {
		g.replicas = *d.Spec.Replicas
	}
	for _, h := range b.hpas { // with an HPA, its minimum is the count
		if h.Spec.ScaleTargetRef.Name == d.Name && h.Spec.MinReplicas != nil && (d.Spec.Replicas == nil || *h.Spec.MinReplicas < g.replicas) {
			g.replicas = *h.Spec.MinReplicas
		}
	}
	i := slices.IndexFunc(g.spec.Containers, func(c corev1.Container) bool { return c.Name == "l1gw" })
	if i < 0 {
		return []error{fmt.Errorf("Deployment l1gw: no container l1gw")}
	}
	g.c = g.spec.Containers[i]
	cfg, err := g.loadConfig(b, tmp)
	if err != nil {
		return []error{err}
	}
	g.cfg = cfg
	errs := g.checkShape()
	errs = append(errs, g.checkPorts()...)
	errs = append(errs, b.checkNetworkPolicy(g)...)
	return append(errs, b.checkRedisConf(g.cfg.Redis.MasterName)...)
}

// checkShape: replicas, spreading, probes on the admin port, the preStop
// sleep and a grace period that outlasts it and server.shutdown_grace.
func (g gateway) checkShape() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf("Deployment l1gw: "+format, a...)) }
	if g.replicas < 2 {
		fail("replicas %d (or the HPA's minReplicas); want at least 2", g.replicas)
	}
	if !slices.ContainsFunc(g.spec.TopologySpreadConstraints, func(t corev1.TopologySpreadConstraint) bool {
		return t.TopologyKey == "kubernetes.io/hostname"
	}) {
		fail("no topologySpreadConstraints over kubernetes.io/hostname")
	}
	for kind, want := range map[string]struct {
		pr   *corev1.Probe
		path string
	}{"readinessProbe": {g.c.ReadinessProbe, "/readyz"}, "livenessProbe": {g.c.LivenessProbe, "/healthz"}} {
		if want.pr == nil || want.pr.HTTPGet == nil {
			fail("%s: want an httpGet probe of %s", kind, want.path)
			continue
		}
		if cp, ok := g.port(want.pr.HTTPGet.Port); !ok || cp.Name != "admin" || want.pr.HTTPGet.Path != want.path {
			fail("%s: got %s on port %s; want %s on the admin port", kind, want.pr.HTTPGet.Path, want.pr.HTTPGet.Port.String(), want.path)
		}
	}
	var preStop int64
	switch l := g.c.Lifecycle; {
	case l == nil || l.PreStop == nil || l.PreStop.Sleep == nil:
		fail("want lifecycle.preStop.sleep (the image has no shell for exec)")
	default:
		preStop = l.PreStop.Sleep.Seconds
	}
	grace := int64(30)
	if g.spec.TerminationGracePeriodSeconds != nil {
		grace = *g.spec.TerminationGracePeriodSeconds
	}
	if need := int64(g.cfg.Server.ShutdownGrace.Seconds()) + preStop; grace <= need {
		fail("terminationGracePeriodSeconds %d; want more than server.shutdown_grace (%s) + the preStop sleep (%ds)", grace, g.cfg.Server.ShutdownGrace, preStop)
	}
	// A connection holding an unfinished request head costs up to about
	// 24 KiB (the README's server.max_conns): the listener must refuse
	// one before they fill the container (pods_test checks a limit).
	if lim, ok := g.c.Resources.Limits[corev1.ResourceMemory]; ok {
		const perConn = 24 << 10
		if need := int64(g.cfg.Server.MaxConns) * perConn; need > lim.Value()/4*3 {
			fail("server.max_conns %d: up to %d MiB of connections at about 24 KiB each; want them within three quarters of the memory limit, %s",
				g.cfg.Server.MaxConns, need>>20, lim.String())
		}
	}
	return errs
}

// checkPorts: the listeners are the container's ports.
func (g gateway) checkPorts() []error {
	var errs []error
	for key, want := range map[string][2]string{"server.listen": {g.cfg.Server.Listen, "proxy"}, "server.admin_listen": {g.cfg.Server.AdminListen, "admin"}} {
		_, p, _ := net.SplitHostPort(want[0])
		cp, ok := g.port(intstr.FromString(want[1]))
		if !ok || strconv.Itoa(int(cp.ContainerPort)) != p {
			errs = append(errs, fmt.Errorf("Deployment l1gw: %s is %q; want the port of the container port named %s (%d)", key, want[0], want[1], cp.ContainerPort))
		}
	}
	return errs
}

// loadConfig finds the config file the container's args name, in its
// ConfigMap, and loads it with config.Load, the image's and the
// container's environment, and every *_file key moved to a copy of its
// file in tmp (a placeholder for each Secret key).
func (g gateway) loadConfig(b *bundle, tmp string) (*config.Config, error) {
	args := g.c.Args
	if len(args) != 3 || args[0] != "serve" || args[1] != "--config" {
		return nil, fmt.Errorf("Deployment l1gw: args %q; want serve --config FILE", args)
	}
	body, vol, err := g.mounted(b, args[2])
	if err != nil || vol.ConfigMap == nil {
		return nil, fmt.Errorf("Deployment l1gw: --config %s: not a file of a mounted ConfigMap (%v)", args[2], err)
	}
	file := filepath.Join(tmp, path.Base(args[2]))
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(body), &raw); err != nil {
		return nil, fmt.Errorf("ConfigMap %s: %w", vol.ConfigMap.Name, err)
	}
	var sets []string
	for key, p := range fileKeys(raw, "") {
		content, v, err := g.mounted(b, p)
		if err != nil || v.Secret == nil {
			return nil, fmt.Errorf("ConfigMap %s: %s is %s, not a file of a mounted Secret (%v)", vol.ConfigMap.Name, key, p, err)
		}
		local := filepath.Join(tmp, strings.ReplaceAll(key, ".", "_"))
		if err := os.WriteFile(local, []byte(content), 0o600); err != nil {
			return nil, err
		}
		sets = append(sets, key+"="+local)
	}
	env, err := imageEnv()
	if err != nil {
		return nil, err
	}
	for _, e := range g.c.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	if g.spec.EnableServiceLinks == nil || *g.spec.EnableServiceLinks {
		env = append(env, serviceLinks(b.services)...)
	}
	cfg, err := config.Load(config.Input{File: file, Environ: env, Sets: sets})
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s, %s: config.Load:\n%w", vol.ConfigMap.Name, path.Base(args[2]), err)
	}
	return cfg, nil
}

// mounted finds the file at p in the container's mounts: its content (a
// placeholder for a Secret's) and its volume.
func (g gateway) mounted(b *bundle, p string) (string, corev1.Volume, error) {
	for _, m := range g.c.VolumeMounts {
		rel, ok := strings.CutPrefix(p, m.MountPath+"/")
		if !ok {
			continue
		}
		i := slices.IndexFunc(g.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			return "", corev1.Volume{}, fmt.Errorf("mount %s has no volume", m.MountPath)
		}
		v := g.spec.Volumes[i]
		switch {
		case v.ConfigMap != nil && b.configMaps[v.ConfigMap.Name] != nil:
			for _, it := range v.ConfigMap.Items {
				if it.Path == rel {
					return b.configMaps[v.ConfigMap.Name].Data[it.Key], v, nil
				}
			}
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return "placeholder-" + it.Key + "\n", v, nil
				}
			}
		}
		return "", v, fmt.Errorf("volume %s has no item %s", v.Name, rel)
	}
	return "", corev1.Volume{}, fmt.Errorf("no volume mounted there")
}

// fileKeys are the config's *_file keys with a value, by dotted path.
func fileKeys(m map[string]any, prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		switch v := v.(type) {
		case map[string]any:
			for kk, vv := range fileKeys(v, prefix+k+".") {
				out[kk] = vv
			}
		case string:
			if strings.HasSuffix(k, "_file") && v != "" {
				out[prefix+k] = v
			}
		}
	}
	return out
}

// imageEnv is the L1GW_* environment the image sets (Dockerfile ENV).
// serviceLinks are the variables the kubelet sets in a pod for the
// Services of its namespace, with enableServiceLinks on (the default):
// l1gw's gives L1GW_SERVICE_HOST, L1GW_PORT_8080_TCP_ADDR and more.
func serviceLinks(svcs []*corev1.Service) []string {
	var env []string
	for _, svc := range svcs {
		if svc.Spec.ClusterIP == corev1.ClusterIPNone || len(svc.Spec.Ports) == 0 {
			continue
		}
		name, ip := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_")), "10.0.0.11"
		first := svc.Spec.Ports[0]
		env = append(env, name+"_SERVICE_HOST="+ip, fmt.Sprintf("%s_SERVICE_PORT=%d", name, first.Port),
			fmt.Sprintf("%s_PORT=%s://%s:%d", name, strings.ToLower(string(first.Protocol)), ip, first.Port))
		for _, p := range svc.Spec.Ports {
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			if p.Name != "" {
				env = append(env, fmt.Sprintf("%s_SERVICE_PORT_%s=%d", name, strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), p.Port))
			}
			at := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, proto)
			env = append(env, fmt.Sprintf("%s=%s://%s:%d", at, strings.ToLower(proto), ip, p.Port),
				at+"_PROTO="+strings.ToLower(proto), fmt.Sprintf("%s_PORT=%d", at, p.Port), at+"_ADDR="+ip)
		}
	}
	return env
}

func imageEnv() ([]string, error) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		return nil, err
	}
	var env []string
	for _, m := range regexp.MustCompile(`(L1GW_\w+)="([^"]*)"`).FindAllStringSubmatch(string(b), -1) {
		env = append(env, m[1]+"="+m[2])
	}
	return env, nil
}

// hostPort splits a URL's or an address's port off.
func hostPort(addr string) (string, int32, error) {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443"}[u.Scheme]+map[string]string{"http": "80"}[u.Scheme])
		}
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseInt(p, 10, 32)
	return h, int32(n), err
}
