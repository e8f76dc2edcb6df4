package deploy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// redisWant are the README's "Production Redis settings" that a Redis
// config in the bundle must carry, directive by directive.
var redisWant = map[string]string{
	"maxmemory-policy":      "noeviction",
	"appendonly":            "yes",
	"appendfsync":           "everysec",
	"tcp-keepalive":         "60",
	"timeout":               "300",
	"min-replicas-to-write": "1",
	"min-replicas-max-lag":  "10",
}

// checkRedisConf checks every redis.conf and sentinel.conf (with its
// init script) in the bundle's ConfigMaps; masterName is the gateway's
// redis.master_name.
func (b *bundle) checkRedisConf(masterName string) []error {
	var errs []error
	for name, cm := range b.configMaps {
		if conf, ok := cm.Data["redis.conf"]; ok {
			got := map[string]string{}
			for line := range strings.Lines(conf) {
				f := strings.Fields(line)
				if len(f) == 0 || strings.HasPrefix(f[0], "#") {
					continue
				}
				if strings.Contains(line, "#") { // Redis has no trailing comments: it reads them as arguments
					errs = append(errs, fmt.Errorf("ConfigMap %s, redis.conf: a comment after %s; Redis refuses the file", name, f[0]))
				}
				if len(f) >= 2 {
					got[f[0]] = f[1]
				}
			}
			for k, want := range redisWant {
				if got[k] != want {
					errs = append(errs, fmt.Errorf("ConfigMap %s, redis.conf: %s is %q; want %q", name, k, got[k], want))
				}
			}
			if got["maxmemory"] == "" {
				errs = append(errs, fmt.Errorf("ConfigMap %s, redis.conf: no maxmemory", name))
			}
		}
		if _, ok := cm.Data["sentinel.conf"]; ok {
			errs = append(errs, checkSentinel(name, cm.Data["sentinel.conf"]+cm.Data["init-sentinel.sh"], masterName)...)
		}
	}
	return errs
}

func checkSentinel(cm, text, masterName string) []error {
	var errs []error
	mon := regexp.MustCompile(`sentinel monitor (\S+) `).FindStringSubmatch(text)
	switch {
	case mon == nil:
		errs = append(errs, fmt.Errorf("ConfigMap %s: no sentinel monitor", cm))
	case mon[1] != masterName:
		errs = append(errs, fmt.Errorf("ConfigMap %s: sentinel monitor %s; want redis.master_name, %s", cm, mon[1], masterName))
	}
	down := regexp.MustCompile(`down-after-milliseconds (\S+) (\d+)`).FindStringSubmatch(text)
	if down == nil {
		return append(errs, fmt.Errorf("ConfigMap %s: no sentinel down-after-milliseconds", cm))
	}
	if ms, _ := strconv.Atoi(down[2]); ms < 1000 || ms > 5000 || down[1] != masterName {
		errs = append(errs, fmt.Errorf("ConfigMap %s: down-after-milliseconds %s %s; want %s, 1000 to 5000", cm, down[1], down[2], masterName))
	}
	return errs
}
