// The page's side of the service worker: registration, the update flow (a new version
// waits until the user says "update now"), requests to the worker over a MessageChannel,
// and the worker's announcements on the `cairn` BroadcastChannel.

export class ServiceWorkerClient {
  /** @param {{ onUpdateWaiting?: (apply: () => void) => void, onAnnouncement?: (msg: object) => void }} hooks */
  constructor({ onUpdateWaiting = () => {}, onAnnouncement = () => {} } = {}) {
    this.onUpdateWaiting = onUpdateWaiting;
    this.channel = new BroadcastChannel('cairn');
    this.channel.onmessage = ({ data }) => onAnnouncement(data);
  }

  get supported() { return 'serviceWorker' in navigator; }

  async register(url = './sw.js') {
    if (!this.supported) return null;
    // `updateViaCache: 'none'`: the sw.js and module checks always reach the server.
    const registration = await navigator.serviceWorker.register(url, { type: 'module', updateViaCache: 'none' });
    this.registration = registration;
    const offer = (worker) => this.onUpdateWaiting(() => worker.postMessage({ type: 'skip-waiting' }));
    // A worker already waiting from an earlier visit, or one that finishes installing now.
    if (registration.waiting && navigator.serviceWorker.controller) offer(registration.waiting);
    registration.addEventListener('updatefound', () => {
      const installing = registration.installing;
      installing?.addEventListener('statechange', () => {
        if (installing.state === 'installed' && navigator.serviceWorker.controller) offer(installing);
      });
    });
    // The new worker took over (the user's word): reload once so page and worker match.
    let reloading = false;
    const hadController = Boolean(navigator.serviceWorker.controller);
    navigator.serviceWorker.addEventListener('controllerchange', () => {
      if (hadController && !reloading) { reloading = true; location.reload(); }
    });
    return registration;
  }

  /**
   * Resolves once a service worker controls this page (on a first visit, after it has
   * installed and claimed the page), or after `timeoutMs` without one. Cairn's worker must
   * start after this: a worker's fetches go through the service worker that controlled
   * the page when the worker was created, and only then are manifests and shards kept
   * for offline use.
   */
  controlled(timeoutMs = 15000) {
    if (!this.supported || navigator.serviceWorker.controller) return Promise.resolve(Boolean(navigator.serviceWorker.controller));
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      navigator.serviceWorker.addEventListener('controllerchange', () => { clearTimeout(timer); resolve(true); }, { once: true });
    });
  }

  /** Sends { type, ... } to the active worker; resolves with its answer. */
  async ask(msg) {
    const registration = await navigator.serviceWorker.ready;
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = ({ data }) => resolve(data);
      registration.active.postMessage(msg, [channel.port2]);
    });
  }
}
