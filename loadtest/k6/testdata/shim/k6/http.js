// A shim of k6/http: records every request and answers with the response
// run.mjs set in state.next (status and headers, as k6 canonicalises them).
import { state } from './state.js';

function request(method, url, body, params) {
  if (typeof url !== 'string') throw new Error(`http.${method}: url ${url} is not a string`);
  const p = params || {};
  state.requests.push({ method, url, headers: { ...(p.headers || {}) }, tags: { ...(p.tags || {}) } });
  const next = state.next || { status: 200, headers: { 'X-Ratelimit-Status': 'ok' } };
  return { status: next.status, headers: { ...next.headers }, body: '', timings: { duration: 1 } };
}

export function get(url, params) { return request('GET', url, null, params); }
export function post(url, body, params) { return request('POST', url, body, params); }
export function expectedStatuses(...args) { return { expectedStatuses: args }; }
export function setResponseCallback(cb) {
  if (!cb || !cb.expectedStatuses) throw new Error('setResponseCallback: not from expectedStatuses');
  state.responseCallback = cb;
}
export default { get, post, expectedStatuses, setResponseCallback };
