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

  /**
   * Registers the service worker and watches for new versions. With a worker already in
   * charge this returns at once: `register()` queues behind any install under way (a new
   * version downloading its precache, possibly megabytes on a slow network), and the app
   * must not wait for that to load its model. On a first visit it waits for the register.
   */
  async register(url = './sw.js') {
    if (!this.supported) return null;
    // The new worker took over (the user's word): reload once so page and worker match.
    let reloading = false;
    const hadController = Boolean(navigator.serviceWorker.controller);
    navigator.serviceWorker.addEventListener('controllerchange', () => {
      if (hadController && !reloading) { reloading = true; location.reload(); }
    });
    const existing = await navigator.serviceWorker.getRegistration();
    if (existing) this.#watchUpdates(existing);
    // `updateViaCache: 'none'`: the sw.js and module checks always reach the server.
    const registering = navigator.serviceWorker.register(url, { type: 'module', updateViaCache: 'none' })
      .then((registration) => { if (!existing) this.#watchUpdates(registration); return registration; });
    if (existing && hadController) {
      registering.catch((e) => console.warn('service worker update check failed:', e));
      return existing;
    }
    return registering;
  }

  /**
   * Offers each new version once it has installed, and sends "Update now" to the newest:
   * when a newer build installs, the worker that was waiting becomes redundant and a
   * skip-waiting sent to it is lost (the page would wait for a reload that never comes).
   * So a worker still installing finishes first, the one waiting then is told, and one
   * that finishes installing after the user said yes is told too.
   */
  #watchUpdates(registration) {
    this.registration = registration;
    let userSaidYes = false;
    const apply = async () => {
      userSaidYes = true;
      const installing = registration.installing;
      if (installing) await new Promise((resolve) => {
        const settled = () => installing.state !== 'installing' && (installing.removeEventListener('statechange', settled), resolve());
        installing.addEventListener('statechange', settled);
        settled();
      });
      registration.waiting?.postMessage({ type: 'skip-waiting' });
    };
    const installed = (worker) => {
      if (!navigator.serviceWorker.controller) return; // a first install: nothing to update
      if (userSaidYes) worker.postMessage({ type: 'skip-waiting' });
      else this.onUpdateWaiting(apply);
    };
    const follow = (worker) => worker?.addEventListener('statechange', () => { if (worker.state === 'installed') installed(worker); });
    // A worker already waiting from an earlier visit, one installing now, or one found later.
    if (registration.waiting) installed(registration.waiting);
    follow(registration.installing);
    registration.addEventListener('updatefound', () => follow(registration.installing));
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
