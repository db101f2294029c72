// Draws the edge's occlusion heatmap (POST /v1/models/NAME/explain) over the image the
// model saw: the picture scaled to the model's input size, as the worker preprocesses it.
// Warm pixels are where hiding the image lowered the answer's probability most.

/** Each pixel gets the mean drop of the patches covering it (as Zeiler & Fergus do). */
function pixelDrops(heatmap) {
  const [h, w] = heatmap.image;
  const sum = new Float32Array(w * h);
  const count = new Uint16Array(w * h);
  heatmap.y.forEach((y0, r) => heatmap.x.forEach((x0, c) => {
    const drop = heatmap.drop[r][c];
    for (let y = y0; y < Math.min(h, y0 + heatmap.patch); y++) {
      for (let x = x0; x < Math.min(w, x0 + heatmap.patch); x++) { sum[y * w + x] += drop; count[y * w + x]++; }
    }
  }));
  return sum.map((s, i) => (count[i] ? Math.max(0, s / count[i]) : 0));
}

/** Dark blue through red to yellow, for t in [0, 1]. */
function warmth(t) {
  return [Math.min(255, 510 * t), Math.max(0, Math.min(255, 510 * t - 255)), Math.max(0, 160 * (1 - 2 * t))];
}

/**
 * Paints `image` (an ImageBitmap, or null when the page no longer has it, e.g. after a
 * restart while the request was queued) with the heatmap blended over it.
 */
export function drawHeatmap(canvas, image, heatmap) {
  const [h, w] = heatmap.image;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#777';
  ctx.fillRect(0, 0, w, h);
  if (image) ctx.drawImage(image, 0, 0, w, h);
  const drops = pixelDrops(heatmap);
  const max = drops.reduce((m, v) => Math.max(m, v), 0);
  const pixels = ctx.getImageData(0, 0, w, h);
  for (let i = 0; i < drops.length; i++) {
    const t = max > 0 ? drops[i] / max : 0;
    const alpha = 0.25 + 0.5 * t;
    const color = warmth(t);
    for (let c = 0; c < 3; c++) pixels.data[i * 4 + c] = pixels.data[i * 4 + c] * (1 - alpha) + color[c] * alpha;
  }
  ctx.putImageData(pixels, 0, 0);
}
