// Asking the edge server (`cairn serve`) for the full-precision answer. The request
// carries an Idempotency-Key: if the network is gone, the service worker queues it and
// answers 202 { queued: true, key }; the real answer comes later over the `cairn`
// BroadcastChannel ('edge-result'), and the server computes it exactly once.

export async function askEdge(modelName, tensor) {
  const key = crypto.randomUUID();
  let response;
  try {
    response = await fetch(`/v1/models/${encodeURIComponent(modelName)}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ inputs: { [tensor.name]: { shape: tensor.shape, data: Array.from(tensor.data) } } }),
    });
  } catch (e) {
    return { state: 'failed', key, message: `The edge could not be reached (${e.message}).` };
  }
  if (response.status === 202 && response.headers.get('x-cairn-queued')) return { state: 'queued', key };
  if (!response.ok) return { state: 'failed', key, message: `The edge answered ${response.status}: ${(await response.text()).slice(0, 200)}` };
  return { state: 'done', key, answer: await response.json() };
}

/**
 * The five most likely labels in an edge answer (JSON text or object): the server's own
 * `top` (computed from the bundle's labels), so the page needs no model to show it.
 */
export function topOfAnswer(answer) {
  const a = typeof answer === 'string' ? JSON.parse(answer) : answer;
  const top = a.top?.[0];
  if (!Array.isArray(top)) throw new Error('the edge answer has no top-k list');
  return top.slice(0, 5).map((t) => ({ label: t.label ?? `class ${t.index}`, index: t.index, p: t.probability }));
}
