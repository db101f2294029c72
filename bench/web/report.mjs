// Turns per-engine results into the printed table and the JSON record.

// `sameFile`: onnxruntime-web ran the same model file as Cairn (so outputs must agree).
export function report(where, model, results, { sameFile = true } = {}) {
  const baseline = results.find((r) => r.engine === 'baseline');
  const engines = results.filter((r) => r.engine !== 'baseline');
  const single = engines.find((r) => r.engine === 'cairn');
  const threaded = engines.find((r) => r.engine === 'cairn-threads');
  // Ratios are the threaded build's when it ran.
  const cairn = threaded ?? single;
  const ort = sameFile ? engines.find((r) => r.engine === 'ort-web') : null;
  const mib = (b) => (b == null ? '-' : (b / 1048576).toFixed(1));
  const lines = [`${where} — ${model}`, 'engine                                    median ms   min ms  cairn/engine  memory MiB (RSS over baseline | engine heap)'];
  for (const r of engines) {
    const ratio = cairn ? (cairn.median_ms / r.median_ms).toFixed(2) : '-';
    const rss = baseline && r.max_rss_bytes ? r.max_rss_bytes - baseline.max_rss_bytes : null;
    lines.push(`${(r.describe ?? r.engine).padEnd(40)} ${r.median_ms.toFixed(2).padStart(10)} ${r.min_ms.toFixed(2).padStart(8)} ${ratio.padStart(13)}  ${mib(rss).padStart(8)} | ${mib(r.engine_memory_bytes)}`);
    if (r.round_medians_ms?.length > 1) lines.push(`  (medians of its ${r.round_medians_ms.length} turns: ${r.round_medians_ms.map((m) => m.toFixed(2)).join(', ')} ms)`);
    if (r.timed_in === 'worker') lines.push(`  (timed inside its Web Worker; as the page saw it, message round trip included: median ${r.caller_median_ms.toFixed(2)}, min ${r.caller_min_ms.toFixed(2)} ms)`);
  }
  let agreement = null;
  if (cairn && ort) {
    // Same ONNX file and input: the outputs must agree (TF.js has other random weights).
    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < ort.output.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(cairn.output[i] - ort.output[i]));
      maxRef = Math.max(maxRef, Math.abs(ort.output[i]));
    }
    agreement = maxDiff / maxRef;
    lines.push(`cairn vs onnxruntime-web outputs: max |diff| / max |ref| = ${agreement.toExponential(2)}`);
  }
  let threadsVsSingle = null;
  if (single && threaded) {
    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < single.output.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(threaded.output[i] - single.output[i]));
      maxRef = Math.max(maxRef, Math.abs(single.output[i]));
    }
    threadsVsSingle = maxDiff / maxRef;
    lines.push(`cairn threaded vs single-threaded outputs: ${maxDiff === 0 ? 'identical' : `max |diff| / max |ref| = ${threadsVsSingle.toExponential(2)}`}`);
  }
  const json = {
    where,
    model,
    agreement_cairn_vs_ort: agreement,
    agreement_threads_vs_single: threadsVsSingle,
    engines: engines.map(({ output, ...r }) => ({ ...r, rss_over_baseline_bytes: baseline ? r.max_rss_bytes - baseline.max_rss_bytes : null })),
  };
  return { table: lines.join('\n'), json };
}

// One result per engine from `rounds` (each an array of per-engine results, engines in the
// same order every round): the timings pooled over the rounds (median, min and p90 of all
// runs), memory the largest any round saw, the rest (output, load time) from the first.
// Engines run in turn within each round, so a burst of load from other tenants of a shared
// machine falls on every engine instead of spoiling one engine's whole sample.
export function mergeRounds(rounds) {
  const sorted = (v) => [...v].sort((a, b) => a - b);
  return rounds[0].map((first, i) => {
    const all = rounds.map((round) => round[i]);
    if (!first.times) return first; // the baseline process: memory only
    const times = sorted(all.flatMap((r) => r.times));
    const at = (q) => times[Math.min(times.length - 1, Math.floor(times.length * q))];
    const median = (v) => sorted(v)[Math.floor(v.length / 2)];
    const merged = { ...first, times, median_ms: at(0.5), min_ms: times[0], p90_ms: at(0.9), rounds: all.length, round_medians_ms: all.map((r) => median(r.times)) };
    if (first.caller_median_ms != null) merged.caller_median_ms = sorted(all.map((r) => r.caller_median_ms))[Math.floor(all.length / 2)];
    if (first.caller_min_ms != null) merged.caller_min_ms = Math.min(...all.map((r) => r.caller_min_ms));
    for (const key of ['max_rss_bytes', 'engine_memory_bytes', 'js_heap_bytes']) {
      if (first[key] != null) merged[key] = Math.max(...all.map((r) => r[key] ?? 0));
    }
    return merged;
  });
}
