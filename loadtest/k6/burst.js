// burst: RATE requests/s (default 100) over the bulk keys, then bursts
// to BURST × RATE (default 10 ×) for 5 s, twice. Tenants hit in a burst
// may be limited (429 is expected); the gateways must keep their latency,
// answer no 5xx and keep deciding with Redis.
//   k6 run -e RATE=100 -e BURST=10 loadtest/k6/burst.js
import { keys, rate, call, baseThresholds } from './lib.js';

const RATE = rate(100);
const PEAK = RATE * parseInt(__ENV.BURST || '10', 10);
const HOLD = __ENV.DURATION || '15s'; // each calm phase

export const options = {
  scenarios: {
    burst: {
      executor: 'ramping-arrival-rate',
      startRate: RATE, timeUnit: '1s',
      preAllocatedVUs: 100, maxVUs: 1000,
      stages: [
        { target: RATE, duration: HOLD },
        { target: PEAK, duration: '1s' }, { target: PEAK, duration: '5s' },
        { target: RATE, duration: '1s' }, { target: RATE, duration: HOLD },
        { target: PEAK, duration: '1s' }, { target: PEAK, duration: '5s' },
        { target: RATE, duration: '1s' }, { target: RATE, duration: HOLD },
      ],
    },
  },
  thresholds: {
    ...baseThresholds,
    http_req_failed: ['rate<0.001'], // 429 counts as expected
    degraded: ['rate<0.001'],
  },
};

export default function () {
  const i = Math.floor(Math.random() * keys.length);
  call('burst', keys[i]);
}
