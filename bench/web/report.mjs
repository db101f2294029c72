// Turns per-engine results into the printed table and the JSON record.

export function report(where, model, results) {
  const baseline = results.find((r) => r.engine === 'baseline');
  const engines = results.filter((r) => r.engine !== 'baseline');
  const cairn = engines.find((r) => r.engine === 'cairn');
  const ort = engines.find((r) => r.engine === 'ort-web');
  const mib = (b) => (b == null ? '-' : (b / 1048576).toFixed(1));
  const lines = [`${where} — ${model}`, 'engine                                    median ms   min ms  cairn/engine  memory MiB (RSS over baseline | engine heap)'];
  for (const r of engines) {
    const ratio = cairn ? (cairn.median_ms / r.median_ms).toFixed(2) : '-';
    const rss = baseline && r.max_rss_bytes ? r.max_rss_bytes - baseline.max_rss_bytes : null;
    lines.push(`${(r.describe ?? r.engine).padEnd(40)} ${r.median_ms.toFixed(2).padStart(10)} ${r.min_ms.toFixed(2).padStart(8)} ${ratio.padStart(13)}  ${mib(rss).padStart(8)} | ${mib(r.engine_memory_bytes)}`);
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
  const json = {
    where,
    model,
    agreement_cairn_vs_ort: agreement,
    engines: engines.map(({ output, ...r }) => ({ ...r, rss_over_baseline_bytes: baseline ? r.max_rss_bytes - baseline.max_rss_bytes : null })),
  };
  return { table: lines.join('\n'), json };
}
