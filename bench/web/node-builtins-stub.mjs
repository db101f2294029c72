// TF.js's ES module bundles import Node built-ins (fs, path, os, perf_hooks) for
// their Node code paths; in the browser the import map points them here.
export default {};
