// A shim of k6/metrics: every metric registers its name; add records a
// sample and checks its tags are strings.
import { state } from './state.js';

class Metric {
  constructor(kind, name) {
    if (!/^[A-Za-z0-9_]{1,128}$/.test(name)) throw new Error(`metric name ${name}`);
    if (state.metrics[name]) throw new Error(`metric ${name} registered twice`);
    state.metrics[name] = kind;
    this.kind = kind;
    this.name = name;
  }

  add(value, tags) {
    for (const [k, v] of Object.entries(tags || {})) {
      if (typeof v !== 'string') throw new Error(`${this.name}: tag ${k} is ${typeof v}, not a string`);
    }
    state.samples.push({ metric: this.name, value: Number(value), tags: { ...(tags || {}) } });
  }
}

export class Rate extends Metric { constructor(name) { super('rate', name); } }
export class Counter extends Metric { constructor(name) { super('counter', name); } }
export class Trend extends Metric { constructor(name) { super('trend', name); } }
export class Gauge extends Metric { constructor(name) { super('gauge', name); } }
