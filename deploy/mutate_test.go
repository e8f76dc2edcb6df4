package deploy

import (
	"strings"
	"testing"
)

const (
	base    = "base/"
	overlay = "overlays/sentinel/"
)

// broken are manifests with one thing changed (old to new in file), each
// refused with an error containing want.
var broken = []struct {
	name, file, old, new, want string
}{
	{"wrong Service selector", base + "service.yaml", "component: gateway}\n  ports:\n    - {name: proxy", "component: gatewy}\n  ports:\n    - {name: proxy", "Service l1gw: selector"},
	{"Service targets a missing port", base + "service.yaml", "targetPort: proxy", "targetPort: http", "Service l1gw: port proxy targets http"},
	{"unknown field", base + "deployment.yaml", "imagePullPolicy: IfNotPresent", "imagePullPolicy: IfNotPresent\n          imagePulPolicy: Always", `Deployment l1gw: error unmarshaling JSON: while decoding JSON: json: unknown field "imagePulPolicy"`},
	{"readiness on the proxy port", base + "deployment.yaml", "httpGet: {path: /readyz, port: admin}", "httpGet: {path: /readyz, port: proxy}", "readinessProbe: got /readyz on port proxy"},
	{"readiness on a wrong path", base + "deployment.yaml", "path: /readyz", "path: /ready", "readinessProbe: got /ready on port admin"},
	{"liveness on no port", base + "deployment.yaml", "httpGet: {path: /healthz, port: admin}", "httpGet: {path: /healthz, port: 9999}", "livenessProbe port 9999 is not a port of the container"},
	{"one replica", base + "hpa.yaml", "minReplicas: 2", "minReplicas: 1", "replicas 1 (or the HPA's minReplicas); want at least 2"},
	{"Secret unreadable", base + "deployment.yaml", "fsGroup: 65532", "supplementalGroups: [65532]", "volume credentials: mode 0440, and no fsGroup"},
	{"no spread over nodes", base + "deployment.yaml", "topologyKey: kubernetes.io/hostname", "topologyKey: example.com/rack", "no topologySpreadConstraints over kubernetes.io/hostname"},
	{"spread over other pods", base + "deployment.yaml", "whenUnsatisfiable: DoNotSchedule\n          labelSelector:\n            matchLabels: {app.kubernetes.io/name: l1gw,", "whenUnsatisfiable: DoNotSchedule\n          labelSelector:\n            matchLabels: {app.kubernetes.io/name: other,", "topologySpreadConstraints[0].labelSelector does not match"},
	{"admin port moved", base + "deployment.yaml", "containerPort: 9090", "containerPort: 9091", `server.admin_listen is ":9090"`},
	{"grace too short", base + "deployment.yaml", "terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 25", "terminationGracePeriodSeconds 25; want more than server.shutdown_grace (20s) + the preStop sleep (5s)"},
	{"preStop by exec", base + "deployment.yaml", "sleep: {seconds: 5}", `exec: {command: [sh, -c, "sleep 5"]}`, "want lifecycle.preStop.sleep"},
	{"writable root", base + "deployment.yaml", "readOnlyRootFilesystem: true # l1gw", "readOnlyRootFilesystem: false # l1gw", "container l1gw: readOnlyRootFilesystem is not true"},
	{"capabilities kept", base + "deployment.yaml", "capabilities: {drop: [ALL]}", "capabilities: {drop: [NET_RAW]}", "container l1gw: capabilities: want drop [ALL]"},
	{"privilege escalation", base + "deployment.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "container l1gw: allowPrivilegeEscalation is not false"},
	{"no seccomp", base + "deployment.yaml", "seccompProfile: {type: RuntimeDefault}", "seccompProfile: {type: Unconfined}", "container l1gw: seccompProfile is not RuntimeDefault"},
	{"root allowed", base + "deployment.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "container l1gw: runAsNonRoot is not true"},
	{"no memory limit", base + "deployment.yaml", "limits: {cpu: \"2\", memory: 512Mi}", "limits: {cpu: \"2\"}", "container l1gw: no memory limit"},
	{"mount without volume", base + "deployment.yaml", "{name: credentials, mountPath", "{name: creds, mountPath", `mounts "creds" at /etc/l1gw-secrets: no such volume`},
	{"subPath mount", base + "deployment.yaml", "{name: config, mountPath: /etc/l1gw, readOnly: true}", "{name: config, mountPath: /etc/l1gw/l1gw.yaml, subPath: l1gw.yaml, readOnly: true}", "with subPath"},
	{"Secret key not created", base + "deployment.yaml", "{key: redis-password, path: redis-password}", "{key: redis-pass, path: redis-password}", `Secret l1gw-credentials key "redis-pass" is not one the README creates`},
	{"config file not mounted", base + "deployment.yaml", `"--config", "/etc/l1gw/l1gw.yaml"`, `"--config", "/etc/l1gw/gateway.yaml"`, "--config /etc/l1gw/gateway.yaml: not a file of a mounted ConfigMap"},
	{"wrong PDB selector", base + "pdb.yaml", "app.kubernetes.io/name: l1gw,", "app.kubernetes.io/name: l1gx,", "PodDisruptionBudget l1gw: selector matches no pod template"},
	{"HPA on nothing", base + "hpa.yaml", "name: l1gw}", "name: l1gw-x}", "scaleTargetRef apps/v1 Deployment/l1gw-x"},
	{"NetworkPolicy on other pods", base + "networkpolicy.yaml", "matchLabels: {app.kubernetes.io/name: l1gw,", "matchLabels: {app.kubernetes.io/name: l1gx,", "no NetworkPolicy selects the gateway pods"},
	{"NetworkPolicy on a wrong port", base + "networkpolicy.yaml", "{port: proxy, protocol: TCP}", "{port: 8000, protocol: TCP}", "ingress port 8000 is not a port of the gateway container"},
	{"NetworkPolicy shuts out Sentinel", base + "networkpolicy.yaml", "- {port: 26379, protocol: TCP}", "", "egress does not allow TCP/26379 (redis.addrs"},
	{"ServiceMonitor on a wrong port", base + "servicemonitor.yaml", "- port: admin", "- port: metrics", `endpoint port "metrics" is not a port of Service l1gw-admin`},
	{"ServiceMonitor unknown field", base + "servicemonitor.yaml", "interval: 15s", "scrapeInterval: 15s", `ServiceMonitor l1gw: error unmarshaling JSON: while decoding JSON: json: unknown field "scrapeInterval"`},
	{"broken config", overlay + "l1gw.yaml", "mode: sentinel", "mode: sentinal", `redis.mode: got "sentinal"`},
	{"connections past the memory limit", overlay + "l1gw.yaml", "max_conns: 15000", "max_conns: 50000", "server.max_conns 50000: up to 1171 MiB of connections"},
	{"credential outside the Secret", overlay + "l1gw.yaml", "password_file: /etc/l1gw-secrets/redis-password", "password_file: /etc/l1gw/redis-password", "redis.password_file is /etc/l1gw/redis-password, not a file of a mounted Secret"},
	{"a sentinel that is not there", overlay + "l1gw.yaml", "l1gw-sentinel-2.l1gw-sentinel:26379", "l1gw-sentinel-3.l1gw-sentinel:26379", "redis.addrs[2]: l1gw-sentinel-3 is no pod of a StatefulSet"},
	{"evicting policy", overlay + "redis.conf", "maxmemory-policy noeviction", "maxmemory-policy allkeys-lru", `maxmemory-policy is "allkeys-lru"; want "noeviction"`},
	{"a trailing comment", overlay + "redis.conf", "appendonly yes", "appendonly yes # durable", "a comment after appendonly; Redis refuses the file"},
	{"no AOF", overlay + "redis.conf", "appendonly yes", "appendonly no", `appendonly is "no"; want "yes"`},
	{"slow failover", overlay + "init-sentinel.sh", "down-after-milliseconds mymaster 5000", "down-after-milliseconds mymaster 30000", "down-after-milliseconds mymaster 30000"},
	{"sentinel watches another master", overlay + "init-sentinel.sh", "sentinel monitor mymaster", "sentinel monitor other", "sentinel monitor other; want redis.master_name, mymaster"},
	{"redis pod runs as root", overlay + "redis.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "StatefulSet l1gw-redis, container config: runAsNonRoot is not true"},
	{"headless Service missing", overlay + "redis.yaml", "serviceName: l1gw-redis", "serviceName: redis", `serviceName "redis" is not a headless Service`},
}

// TestBrokenManifestsAreRefused renders each of broken from a copy of the
// manifests and wants the validation to refuse it with the error named.
func TestBrokenManifestsAreRefused(t *testing.T) {
	keys := secretKeys(t)
	for _, tc := range broken {
		t.Run(tc.name, func(t *testing.T) {
			tr := readTree(t)
			if n := strings.Count(tr[tc.file], tc.old); n != 1 {
				t.Fatalf("%s holds %q %d times; want once", tc.file, tc.old, n)
			}
			tr[tc.file] = strings.Replace(tr[tc.file], tc.old, tc.new, 1)
			b, err := tr.render("overlays/sentinel")
			if err == nil {
				err = b.validate(keys, t.TempDir())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}
