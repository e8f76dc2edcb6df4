// A shim of k6/execution: the VU as run.mjs sets it.
export default { get vu() { return { idInTest: globalThis.__VU }; } };
