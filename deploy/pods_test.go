package deploy

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// secretName is the Secret created by hand (README, "Deployment").
const secretName = "l1gw-credentials"

// checkPods runs the per-pod checks on every workload.
func (b *bundle) checkPods(secretKeys map[string]bool) []error {
	var errs []error
	for _, p := range b.pods() {
		errs = append(errs, p.checkSecurity()...)
		errs = append(errs, p.checkProbes()...)
		errs = append(errs, b.checkVolumes(p, secretKeys)...)
	}
	return errs
}

func (p pod) containers() []corev1.Container {
	return append(slices.Clone(p.spec.InitContainers), p.spec.Containers...)
}

// checkSecurity: non-root, seccomp RuntimeDefault, no privilege
// escalation, a read-only root, every capability dropped, and requests
// and limits for CPU and memory, on every container.
func (p pod) checkSecurity() []error {
	var errs []error
	ps := p.spec.SecurityContext
	if ps == nil {
		ps = &corev1.PodSecurityContext{}
	}
	for _, c := range p.containers() {
		fail := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s, container %s: %s", p.name, c.Name, fmt.Sprintf(format, a...)))
		}
		cs := c.SecurityContext
		if cs == nil {
			fail("no securityContext")
			continue
		}
		if !isTrue(cs.RunAsNonRoot) && !isTrue(ps.RunAsNonRoot) {
			fail("runAsNonRoot is not true")
		}
		seccomp := cs.SeccompProfile
		if seccomp == nil {
			seccomp = ps.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			fail("seccompProfile is not RuntimeDefault")
		}
		if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
			fail("allowPrivilegeEscalation is not false")
		}
		if !isTrue(cs.ReadOnlyRootFilesystem) {
			fail("readOnlyRootFilesystem is not true")
		}
		if cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") || len(cs.Capabilities.Add) > 0 {
			fail("capabilities: want drop [ALL] and nothing added")
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				fail("no %s request", r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				fail("no %s limit", r)
			}
		}
	}
	return errs
}

func isTrue(b *bool) bool { return b != nil && *b }

// checkProbes: every HTTP and TCP probe names a port of its container.
func (p pod) checkProbes() []error {
	var errs []error
	for _, c := range p.spec.Containers {
		own := pod{p.name, p.labels, &corev1.PodSpec{Containers: []corev1.Container{c}}}
		for kind, pr := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
			switch {
			case pr == nil:
			case pr.HTTPGet != nil:
				if _, ok := own.port(pr.HTTPGet.Port); !ok {
					errs = append(errs, fmt.Errorf("%s, container %s: %s port %s is not a port of the container", p.name, c.Name, kind, pr.HTTPGet.Port.String()))
				}
			case pr.TCPSocket != nil:
				if _, ok := own.port(pr.TCPSocket.Port); !ok {
					errs = append(errs, fmt.Errorf("%s, container %s: %s port %s is not a port of the container", p.name, c.Name, kind, pr.TCPSocket.Port.String()))
				}
			}
		}
	}
	return errs
}

// checkVolumes: every mount has its volume, every ConfigMap volume its
// ConfigMap and keys, and every Secret reference a key of the Secret.
func (b *bundle) checkVolumes(p pod, secretKeys map[string]bool) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(p.name+": "+format, a...)) }
	claims := map[string]bool{}
	for _, s := range b.statefulSets {
		if "StatefulSet "+s.Name == p.name {
			for _, c := range s.Spec.VolumeClaimTemplates {
				claims[c.Name] = true
			}
		}
	}
	secretKey := func(where, name, key string) {
		if name != secretName || !secretKeys[key] {
			fail("%s: Secret %s key %q is not one the README creates (Secret %s, keys %v)", where, name, key, secretName, secretKeys)
		}
	}
	for _, v := range p.spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			cm := b.configMaps[v.ConfigMap.Name]
			if cm == nil {
				fail("volume %s: no ConfigMap %s", v.Name, v.ConfigMap.Name)
				continue
			}
			for _, it := range v.ConfigMap.Items {
				if _, ok := cm.Data[it.Key]; !ok {
					fail("volume %s: ConfigMap %s has no key %q", v.Name, cm.Name, it.Key)
				}
			}
		case v.Secret != nil:
			if !readable(v.Secret.DefaultMode, p.spec.SecurityContext) {
				fail("volume %s: mode %#o, and no fsGroup: the container's user cannot read the files", v.Name, *v.Secret.DefaultMode)
			}
			if len(v.Secret.Items) == 0 {
				fail("volume %s: list the Secret's items, so a missing key fails the mount", v.Name)
			}
			for _, it := range v.Secret.Items {
				secretKey("volume "+v.Name, v.Secret.SecretName, it.Key)
			}
		}
	}
	for _, c := range p.containers() {
		for _, m := range c.VolumeMounts {
			if !claims[m.Name] && !slices.ContainsFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
				fail("container %s mounts %q at %s: no such volume", c.Name, m.Name, m.MountPath)
			}
			if m.SubPath != "" {
				fail("container %s mounts %s with subPath: it would never see an update", c.Name, m.MountPath)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				secretKey("container "+c.Name+" env "+e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		}
	}
	return errs
}

// readable reports whether a Secret volume's files (mode, default 0644)
// can be read by a non-root user: by all, or by the pod's fsGroup.
func readable(mode *int32, ps *corev1.PodSecurityContext) bool {
	if mode == nil || *mode&0o004 != 0 {
		return true
	}
	return *mode&0o040 != 0 && ps != nil && ps.FSGroup != nil
}
