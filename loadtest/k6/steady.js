// steady: RATE requests/s (default 150) for DURATION (default 1m) over
// every bulk key, Zipf-distributed (ZIPF_S, default 1.1), each tenant
// inside its plan (50/s, 2000/min): nothing is limited, nothing degraded.
//   k6 run -e KEYS=../../.stack/keys.txt loadtest/k6/steady.js
import { keys, zipf, rate, duration, call, baseThresholds } from './lib.js';

const RATE = rate(150);
const sampler = zipf(keys.length, parseFloat(__ENV.ZIPF_S || '1.1'));

export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: RATE, timeUnit: '1s', duration: duration('1m'),
      preAllocatedVUs: 50, maxVUs: 300,
    },
  },
  thresholds: {
    ...baseThresholds,
    http_req_failed: ['rate<0.001'],
    rate_limited: ['rate<0.001'], // every tenant is inside its limits
    degraded: ['rate<0.001'],
  },
};

// setup refuses a RATE at which the busiest tenant would pass its plan
// (PER_SECOND, PER_MINUTE: the stack's standard plan), with a margin for
// the draw's spread.
export function setup() {
  const top = RATE * sampler.topShare;
  const perSecond = parseFloat(__ENV.PER_SECOND || '50');
  const perMinute = parseFloat(__ENV.PER_MINUTE || '2000');
  if (top > 0.6 * perSecond || top * 60 > 0.9 * perMinute) {
    throw new Error(`RATE ${RATE}: the busiest tenant gets ${top.toFixed(1)}/s, ` +
      `past the plan's ${perSecond}/s or ${perMinute}/min: lower RATE or ZIPF_S, or give more KEYS`);
  }
  return { top };
}

export default function () {
  const i = sampler.draw();
  call('steady', keys[i]);
}
