// A small typed consumer of @cairn-ml/web, page side: `tsc --noEmit` checks the package's
// declarations (resolved through its `exports` map) against real use.
import { Cairn, CairnError, type LoadProgress, type Model, type RunResult, type Backend, type TextPair } from '@cairn-ml/web';

export async function classify(image: ImageBitmap): Promise<string> {
  const cairn: Cairn = await Cairn.start({ backend: 'auto', memoryBudget: 64 << 20 });
  const backend: Backend = cairn.backend;
  const seen: LoadProgress[] = [];
  const model: Model = await cairn.load('/models/m/manifest.json', { onProgress: (p) => seen.push(p) });
  const result: RunResult = await model.run(image, { priority: 1, prefer: 'device' });
  const tensor = await model.run({ data: new Float32Array(3 * 224 * 224), shape: [1, 3, 224, 224] });
  // Outputs carry their dtype: an int64 output's data is a BigInt64Array, so an element may be a bigint.
  const first: number = Number(tensor.outputs[0].data[0]);
  await model.complete;
  // Deadline-driven widths (docs/adr/0029): the runtime picks the width and says why.
  model.setDeadline(40);
  const framed: RunResult = await model.run(image, { stream: 'camera', deadlineMs: model.deadlineMs ?? 40 });
  const widths: number[] = model.widths;
  const why = `${framed.width ?? 1} of ${widths.join(',')}: ${framed.widthReason ?? ''} in ${framed.timings.totalMs ?? 0} ms`;
  return `${backend} ${result.top?.[0].label ?? '?'} ${result.level} ${result.where} ${first} ${seen.length} ${why}`;
}

export function isCorrupt(e: unknown): boolean {
  return e instanceof CairnError && e.code === 'shard-corrupt';
}


// Text bundles: a cross-encoder's scores for query/passage pairs, and what the placement weighed.
export async function rerank(model: Model, query: string, passages: string[]): Promise<{ scores: number[]; deviceMs: number | null }> {
  const pairs: TextPair[] = passages.map((p) => ({ text: query, textPair: p }));
  const { results, placement } = await model.classify(pairs, { prefer: 'auto' });
  return { scores: results.map((r) => r.score), deviceMs: placement?.estimate.deviceMs ?? null };
}
