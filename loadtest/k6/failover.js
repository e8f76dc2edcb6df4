// failover: RATE requests/s (default 100) over the bulk keys for DURATION
// (default 1m); kill or stall the stack's primary meanwhile (`make stack`
// prints how). With ratelimit.fail_mode open (the stack's), requests
// decided while no primary answers are admitted and marked degraded: no
// 5xx, and the degraded share stays within MAX_DEGRADED (default 0.1, a
// few seconds of a minute).
//   k6 run loadtest/k6/failover.js & sleep 20; kill -STOP <primary pid>
import { keys, rate, duration, call, baseThresholds } from './lib.js';

export const options = {
  scenarios: {
    failover: {
      executor: 'constant-arrival-rate',
      rate: rate(100), timeUnit: '1s', duration: duration('1m'),
      preAllocatedVUs: 50, maxVUs: 300,
    },
  },
  thresholds: {
    ...baseThresholds,
    http_req_failed: ['rate<0.001'],
    degraded: [`rate<${parseFloat(__ENV.MAX_DEGRADED || '0.1')}`],
  },
};

export default function () {
  const i = Math.floor(Math.random() * keys.length);
  call('failover', keys[i]);
}
