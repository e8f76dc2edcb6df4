// Runs a k6 scenario script under node with the k6 shim: checks its
// options (executors, exec functions, threshold syntax against the
// metrics it registers), runs setup, then each scenario's function
// ITERATIONS times per answer in ANSWERS, and prints what was recorded
// as JSON. Usage: K6_ENV='{"RATE":"100"}' node run.mjs SCRIPT
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { state } from 'k6/state.js';

const script = resolve(process.argv[2]);
globalThis.__ENV = JSON.parse(process.env.K6_ENV || '{}');
globalThis.__VU = 0;
globalThis.__ITER = 0;
globalThis.open = (p) => readFileSync(resolve(dirname(script), p), 'utf8');

const mod = await import(pathToFileURL(script).href);
const opts = mod.options;
if (!opts || !opts.scenarios || !opts.thresholds) throw new Error('no options.scenarios or options.thresholds');

const executors = ['constant-arrival-rate', 'ramping-arrival-rate', 'constant-vus', 'ramping-vus', 'per-vu-iterations', 'shared-iterations'];
const builtin = ['http_req_duration', 'http_req_failed', 'http_reqs', 'checks', 'iteration_duration'];
const expr = /^(avg|min|max|med|p\(\d+(\.\d+)?\)|rate|count|value)\s*(<|<=|>|>=|==|===|!=)\s*\d+(\.\d+)?$/;
for (const [name, list] of Object.entries(opts.thresholds)) {
  const metric = name.split('{')[0];
  if (!builtin.includes(metric) && !state.metrics[metric]) throw new Error(`threshold on unknown metric ${name}`);
  const tag = name.match(/\{scenario:([^}]+)\}$/);
  if (tag && !opts.scenarios[tag[1]]) throw new Error(`threshold ${name}: no scenario ${tag[1]}`);
  for (const e of list) if (!expr.test(e)) throw new Error(`threshold ${name}: bad expression ${e}`);
}
if (!state.responseCallback) throw new Error('no http.setResponseCallback: 429 would count as failed');

const setupData = mod.setup ? mod.setup() : undefined;
const answers = [
  { status: 200, headers: { 'X-Ratelimit-Status': 'ok' } },
  { status: 429, headers: { 'X-Ratelimit-Status': 'limited' } },
  { status: 200, headers: { 'X-Ratelimit-Status': 'degraded' } },
  { status: 503, headers: {} },
];
const iterations = parseInt(process.env.ITERATIONS || '50', 10);
const runs = {};
for (const [name, sc] of Object.entries(opts.scenarios)) {
  if (!executors.includes(sc.executor)) throw new Error(`scenario ${name}: executor ${sc.executor}`);
  const fn = mod[sc.exec || 'default'];
  if (typeof fn !== 'function') throw new Error(`scenario ${name}: no exported function ${sc.exec || 'default'}`);
  const before = state.requests.length;
  for (const a of answers) {
    state.next = a;
    for (let i = 0; i < iterations; i++) { globalThis.__VU = 1 + (i % 7); globalThis.__ITER = i; fn(setupData); }
  }
  runs[name] = state.requests.slice(before).map((r) => ({ ...r, scenario: name }));
}
process.stdout.write(JSON.stringify({
  scenarios: Object.keys(opts.scenarios), runs, samples: state.samples,
  metrics: state.metrics, checks: state.checks, thresholds: opts.thresholds, setup: setupData ?? null,
}));
