// Typed tensors in Cairn's packed binary form, the one layout the wasm engine's `runTensors`
// and the edge's `/v1/models/NAME/infer` both read: every tensor's bytes back to back, each at
// a multiple of `align` bytes, described by one spec per tensor.

/**
 * @param {{ name: string, dtype: string, shape: number[], data: ArrayBufferView }[]} tensors
 * @param {number} [align] byte alignment of each tensor's offset (the edge reads int64 in
 *   place, so its requests use 8; the engine copies, so 1 packs tightest)
 * @returns {{ specs: { name: string, dtype: string, shape: number[], offset: number, bytes: number }[], buffer: Uint8Array }}
 */
export function packTensors(tensors, align = 1) {
  const specs = [];
  let size = 0;
  for (const t of tensors) {
    size = Math.ceil(size / align) * align;
    specs.push({ name: t.name, dtype: t.dtype, shape: t.shape, offset: size, bytes: t.data.byteLength });
    size += t.data.byteLength;
  }
  const buffer = new Uint8Array(size);
  tensors.forEach((t, i) => buffer.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), specs[i].offset));
  return { specs, buffer };
}
