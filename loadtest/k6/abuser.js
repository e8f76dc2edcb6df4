// abuser: one tenant (ABUSER_KEY, the stack's tenant "abuser", 10/s)
// sends ABUSE × its limit (default 20 × 10 = 200/s) while RATE normal
// requests/s (default 100) spread evenly over the bulk keys. The abuser
// is denied (429) about 19 times in 20; the others must not notice: no
// 429, no extra latency.
//   k6 run loadtest/k6/abuser.js
import { keys, rate, duration, call, baseThresholds } from './lib.js';

const ABUSER_KEY = __ENV.ABUSER_KEY || 'stack-abuser-key';
const ABUSER_LIMIT = parseInt(__ENV.ABUSER_LIMIT || '10', 10);
const ABUSE = parseInt(__ENV.ABUSE || '20', 10);

export const options = {
  scenarios: {
    normal: {
      executor: 'constant-arrival-rate', exec: 'normal',
      rate: rate(100), timeUnit: '1s', duration: duration('1m'),
      preAllocatedVUs: 30, maxVUs: 200,
    },
    abuser: {
      executor: 'constant-arrival-rate', exec: 'abuser',
      rate: ABUSE * ABUSER_LIMIT, timeUnit: '1s', duration: duration('1m'),
      preAllocatedVUs: 30, maxVUs: 200,
    },
  },
  thresholds: {
    ...baseThresholds,
    'http_req_duration{scenario:normal}': ['p(99)<50'],
    'rate_limited{scenario:normal}': ['rate<0.001'],
    'rate_limited{scenario:abuser}': [`rate>${(1 - 1.5 / ABUSE).toFixed(3)}`],
    'degraded{scenario:normal}': ['rate<0.001'],
  },
};

export function normal() {
  const i = Math.floor(Math.random() * keys.length);
  call('abuser-normal', keys[i]);
}

export function abuser() {
  call('abuser', { key: ABUSER_KEY, tenant: 'abuser' });
}
