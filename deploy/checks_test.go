package deploy

import (
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// pod is the pod template of a workload.
type pod struct {
	name   string // "Deployment l1gw"
	labels map[string]string
	spec   *corev1.PodSpec
}

func (b *bundle) pods() []pod {
	var out []pod
	for _, d := range b.deployments {
		out = append(out, pod{"Deployment " + d.Name, d.Spec.Template.Labels, &d.Spec.Template.Spec})
	}
	for _, s := range b.statefulSets {
		out = append(out, pod{"StatefulSet " + s.Name, s.Spec.Template.Labels, &s.Spec.Template.Spec})
	}
	return out
}

// selects reports whether a non-empty equality selector matches labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// labelSelects is selects for a metav1.LabelSelector; match expressions
// are not used in these manifests, so one is an error.
func labelSelects(sel *metav1.LabelSelector, labels map[string]string) bool {
	return sel != nil && len(sel.MatchExpressions) == 0 && selects(sel.MatchLabels, labels)
}

func (b *bundle) podsFor(sel map[string]string) []pod {
	var out []pod
	for _, p := range b.pods() {
		if selects(sel, p.labels) {
			out = append(out, p)
		}
	}
	return out
}

// port resolves a named or numeric port against a pod's containers.
func (p pod) port(ref intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, c := range p.spec.Containers {
		for _, cp := range c.Ports {
			if ref.Type == intstr.String && cp.Name == ref.StrVal || ref.Type == intstr.Int && cp.ContainerPort == ref.IntVal {
				return cp, true
			}
		}
	}
	return corev1.ContainerPort{}, false
}

// checkSelectors: every workload selects its own template, and every
// Service, PDB, NetworkPolicy, HPA and ServiceMonitor finds its target.
func (b *bundle) checkSelectors() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, d := range b.deployments {
		if !labelSelects(d.Spec.Selector, d.Spec.Template.Labels) {
			fail("Deployment %s: spec.selector does not match its pod labels %v", d.Name, d.Spec.Template.Labels)
		}
	}
	for _, s := range b.statefulSets {
		if !labelSelects(s.Spec.Selector, s.Spec.Template.Labels) {
			fail("StatefulSet %s: spec.selector does not match its pod labels %v", s.Name, s.Spec.Template.Labels)
		}
		if !slices.ContainsFunc(b.services, func(svc *corev1.Service) bool {
			return svc.Name == s.Spec.ServiceName && svc.Spec.ClusterIP == corev1.ClusterIPNone
		}) {
			fail("StatefulSet %s: serviceName %q is not a headless Service here", s.Name, s.Spec.ServiceName)
		}
	}
	for _, svc := range b.services {
		if len(b.podsFor(svc.Spec.Selector)) == 0 {
			fail("Service %s: selector %v matches no pod template", svc.Name, svc.Spec.Selector)
		}
	}
	for _, p := range b.pdbs {
		if !slices.ContainsFunc(b.pods(), func(q pod) bool { return labelSelects(p.Spec.Selector, q.labels) }) {
			fail("PodDisruptionBudget %s: selector matches no pod template", p.Name)
		}
	}
	for _, n := range b.netpols {
		if !slices.ContainsFunc(b.pods(), func(q pod) bool { return labelSelects(&n.Spec.PodSelector, q.labels) }) {
			fail("NetworkPolicy %s: podSelector matches no pod template", n.Name)
		}
	}
	for _, h := range b.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || b.deployment(ref.Name) == nil {
			fail("HorizontalPodAutoscaler %s: scaleTargetRef %s %s/%s is not a Deployment here", h.Name, ref.APIVersion, ref.Kind, ref.Name)
		}
	}
	return append(errs, b.checkTopologySpread()...)
}

func (b *bundle) checkTopologySpread() []error {
	var errs []error
	for _, p := range b.pods() {
		for i, tsc := range p.spec.TopologySpreadConstraints {
			if !labelSelects(tsc.LabelSelector, p.labels) {
				errs = append(errs, fmt.Errorf("%s: topologySpreadConstraints[%d].labelSelector does not match its own pods", p.name, i))
			}
		}
	}
	return errs
}

func (b *bundle) deployment(name string) *appsv1.Deployment {
	for _, d := range b.deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// checkServicePorts: every Service's target port is a container port of
// the pods it selects, and a ServiceMonitor's port is a Service's port.
func (b *bundle) checkServicePorts() []error {
	var errs []error
	for _, svc := range b.services {
		for _, sp := range svc.Spec.Ports {
			for _, p := range b.podsFor(svc.Spec.Selector) {
				if _, ok := p.port(sp.TargetPort); !ok {
					errs = append(errs, fmt.Errorf("Service %s: port %s targets %s, not a container port of %s", svc.Name, sp.Name, sp.TargetPort.String(), p.name))
				}
			}
		}
	}
	for _, m := range b.monitors {
		found := false
		for _, svc := range b.services {
			if !labelSelects(&m.Spec.Selector, svc.Labels) {
				continue
			}
			for _, ep := range m.Spec.Endpoints {
				found = true
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == ep.Port }) {
					errs = append(errs, fmt.Errorf("ServiceMonitor %s: endpoint port %q is not a port of Service %s", m.Name, ep.Port, svc.Name))
				}
				if ep.Path != "/metrics" {
					errs = append(errs, fmt.Errorf("ServiceMonitor %s: path %q; want /metrics", m.Name, ep.Path))
				}
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("ServiceMonitor %s: selector %v matches no Service with endpoints", m.Name, m.Spec.Selector.MatchLabels))
		}
	}
	return errs
}
