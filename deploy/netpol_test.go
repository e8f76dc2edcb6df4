package deploy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// checkNetworkPolicy: a policy selects the gateway pods, lets in exactly
// the ports its Services target, and lets out DNS and the ports of the
// Redis addresses and upstream targets the config names.
func (b *bundle) checkNetworkPolicy(g gateway) []error {
	i := slices.IndexFunc(b.netpols, func(n *networkingv1.NetworkPolicy) bool { return labelSelects(&n.Spec.PodSelector, g.labels) })
	if i < 0 {
		return []error{fmt.Errorf("no NetworkPolicy selects the gateway pods %v", g.labels)}
	}
	n := b.netpols[i]
	var errs []error
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("NetworkPolicy "+n.Name+": "+format, a...))
	}
	if !slices.Contains(n.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(n.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		fail("policyTypes %v; want Ingress and Egress", n.Spec.PolicyTypes)
	}
	in := map[int32]bool{}
	for _, r := range n.Spec.Ingress {
		if len(r.From) == 0 {
			fail("an ingress rule without from admits every source")
		}
		for _, p := range r.Ports {
			if p.Port == nil {
				fail("an ingress rule without a port opens every port")
				continue
			}
			cp, ok := g.port(*p.Port)
			if !ok {
				fail("ingress port %s is not a port of the gateway container", p.Port.String())
			}
			in[cp.ContainerPort] = true
		}
	}
	targets := map[int32]bool{}
	for _, svc := range b.services {
		if !selects(svc.Spec.Selector, g.labels) {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			if cp, ok := g.port(sp.TargetPort); ok {
				targets[cp.ContainerPort] = true
				if !in[cp.ContainerPort] {
					fail("Service %s targets port %d, which no ingress rule admits", svc.Name, cp.ContainerPort)
				}
			}
		}
	}
	for p := range in {
		if !targets[p] {
			fail("ingress admits port %d, which no Service targets", p)
		}
	}
	return append(errs, b.checkEgress(g, n)...)
}

func (b *bundle) checkEgress(g gateway, n *networkingv1.NetworkPolicy) []error {
	var errs []error
	out := map[string]bool{}
	for _, r := range n.Spec.Egress {
		for _, p := range r.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			if p.Port != nil {
				out[string(proto)+"/"+p.Port.String()] = true
			}
		}
	}
	need := map[string]string{"UDP/53": "DNS"}
	for i, a := range g.cfg.Redis.Addrs {
		key := fmt.Sprintf("redis.addrs[%d]", i)
		host, port, err := hostPort(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("ConfigMap: %s: %v", key, err))
			continue
		}
		need["TCP/"+strconv.Itoa(int(port))] = key
		errs = append(errs, b.checkRedisHost(key, host, port)...)
	}
	for name, u := range g.cfg.Upstreams {
		for i, t := range u.Targets {
			if _, port, err := hostPort(t); err == nil {
				need["TCP/"+strconv.Itoa(int(port))] = fmt.Sprintf("upstreams.%s.targets[%d]", name, i)
			}
		}
	}
	for p, why := range need {
		if !out[p] {
			errs = append(errs, fmt.Errorf("NetworkPolicy %s: egress does not allow %s (%s)", n.Name, p, why))
		}
	}
	return errs
}

// checkRedisHost: an address of the form pod.service, where the Service
// is in the bundle, names a pod of the StatefulSet behind that headless
// Service, on a port it serves. Other hosts are outside the bundle.
func (b *bundle) checkRedisHost(key, host string, port int32) []error {
	podName, svcName, ok := strings.Cut(host, ".")
	if !ok {
		return nil
	}
	i := slices.IndexFunc(b.services, func(s *corev1.Service) bool { return s.Name == svcName })
	if i < 0 {
		return nil
	}
	svc := b.services[i]
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port }) {
		return []error{fmt.Errorf("ConfigMap: %s: Service %s has no port %d", key, svcName, port)}
	}
	for _, s := range b.statefulSets {
		ord, err := strconv.Atoi(strings.TrimPrefix(podName, s.Name+"-"))
		if s.Spec.ServiceName == svcName && strings.HasPrefix(podName, s.Name+"-") && err == nil {
			if s.Spec.Replicas != nil && int32(ord) < *s.Spec.Replicas {
				return nil
			}
		}
	}
	return []error{fmt.Errorf("ConfigMap: %s: %s is no pod of a StatefulSet behind Service %s", key, podName, svcName)}
}
