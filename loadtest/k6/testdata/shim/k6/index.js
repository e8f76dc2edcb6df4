// A shim of the k6 module for running scenario code under node: check
// counts its results; sleep does nothing.
import { state } from './state.js';

export function check(value, sets) {
  let ok = true;
  for (const [name, fn] of Object.entries(sets)) {
    const r = Boolean(fn(value));
    state.checks[name] = (state.checks[name] || 0) + (r ? 0 : 1);
    ok = ok && r;
  }
  return ok;
}

export function sleep() {}
export default { check, sleep };
