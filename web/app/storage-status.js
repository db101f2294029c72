// Storage: ask for persistent storage (so the browser does not evict the model under
// pressure) and show usage against quota.

const MB = (n) => `${(n / 1e6).toFixed(1)} MB`;
const GB = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : MB(n));

export async function requestPersistence() {
  if (!navigator.storage?.persist) return null;
  return (await navigator.storage.persisted()) || navigator.storage.persist();
}

export async function showStorage({ meter, text, persist }, persisted) {
  if (!navigator.storage?.estimate) { text.textContent = 'This browser does not report storage use.'; return null; }
  const { usage = 0, quota = 0 } = await navigator.storage.estimate();
  meter.max = quota || 1;
  meter.value = usage;
  text.textContent = `Using ${MB(usage)} of ${GB(quota)} available to this app`;
  if (persisted !== undefined) {
    persist.textContent = persisted ? 'Storage is persistent: the browser keeps the model even when space runs low.'
      : 'Storage is best-effort: the browser may clear the model when space runs low (installing the app usually makes it persistent).';
  }
  return { usage, quota };
}
