// Shared by the k6 scenarios: targets, keys, the Zipf draw, one request
// with its tags and metrics. Written for k6 v1.x (the k6/http, k6/metrics
// APIs used exist since v0.31); k6 is not part of this repository
// (AGPL-3.0): install it yourself (https://grafana.com/docs/k6/).
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

// TARGET: gateways, comma-separated; `make stack` starts these two.
export const targets = (__ENV.TARGET || 'http://127.0.0.1:18080,http://127.0.0.1:18082')
  .split(',').map((t) => t.trim().replace(/\/+$/, '')).filter((t) => t !== '');

// RATE and DURATION, with a scenario's defaults.
export function rate(def) { return parseInt(__ENV.RATE || String(def), 10); }
export function duration(def) { return __ENV.DURATION || def; }

// The bulk keys, each with its tenant (a tag): KEYS, a file of lines
// `KEY [TENANT]` (`make stack` writes .stack/keys.txt; a relative path is
// taken from this directory; without TENANT the tag is the line's
// number), else KEY_PREFIX + a 4-digit index for TENANTS tenants
// (stack-key-0000 of tenant t0000 …, as `make stack` serves them).
export const keys = loadKeys();

function loadKeys() {
  if (__ENV.KEYS) {
    const lines = open(__ENV.KEYS).split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    if (lines.length === 0) throw new Error(`KEYS ${__ENV.KEYS}: no key`);
    return lines.map((l, i) => {
      const [key, tenant] = l.split(/\s+/);
      return { key, tenant: tenant || `line${i + 1}` };
    });
  }
  const prefix = __ENV.KEY_PREFIX || 'stack-key-';
  const n = parseInt(__ENV.TENANTS || '1000', 10);
  return Array.from({ length: n }, (_, i) => {
    const id = String(i).padStart(4, '0');
    return { key: prefix + id, tenant: 't' + id };
  });
}

// zipf returns a sampler of indexes 0..n-1 with P(i) ∝ 1/(i+1)^s, and
// the share of the most frequent one.
export function zipf(n, s) {
  const cdf = new Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) { sum += 1 / Math.pow(i + 1, s); cdf[i] = sum; }
  for (let i = 0; i < n; i++) cdf[i] /= sum;
  const draw = () => {
    const u = Math.random();
    let lo = 0, hi = n - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] < u) lo = mid + 1; else hi = mid; }
    return lo;
  };
  return { draw, topShare: cdf[0] };
}

// Metrics: 5xx answers, 429 answers and degraded decisions (fail open:
// admitted while Redis could not decide) as rates; answers by status.
export const serverErrors = new Rate('server_errors');
export const limited = new Rate('rate_limited');
export const degraded = new Rate('degraded');
export const answers = new Counter('answers');

// 429 is an expected answer of a rate limiter: not a failed request.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 399 }, 429));

// The thresholds every scenario shares.
export const baseThresholds = {
  http_req_duration: ['p(99)<50'],
  server_errors: ['rate==0'],
};

// call sends GET /loadtest/<scenario> with a key through one of the
// targets (by VU), tagged with its tenant, and records the answer's
// X-RateLimit-Status as a tag of the custom metrics.
export function call(scenario, { key, tenant }) {
  const target = targets[(__VU || 0) % targets.length];
  const res = http.get(`${target}/loadtest/${scenario}`, {
    headers: { 'X-API-Key': key },
    tags: { tenant, name: `${target}/loadtest/${scenario}` },
  });
  const status = res.headers['X-Ratelimit-Status'] || 'none';
  const tags = { tenant, rl_status: status };
  serverErrors.add(res.status >= 500, tags);
  limited.add(res.status === 429, tags);
  degraded.add(status === 'degraded', tags);
  answers.add(1, { tenant, rl_status: status, status: String(res.status) });
  check(res, { 'no 5xx': (r) => r.status < 500, 'not 401': (r) => r.status !== 401 });
  return res;
}
