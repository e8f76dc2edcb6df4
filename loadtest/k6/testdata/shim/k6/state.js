// What the shim records, read by run.mjs.
export const state = { requests: [], samples: [], metrics: {}, checks: {}, responseCallback: null, next: null };
