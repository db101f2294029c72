// Announcements to every page of the app (results of replayed edge requests, queue
// changes, evicted model versions, a full quota). Pages listen on the same channel
// name; the message `type` says what happened.

export const CHANNEL = 'cairn';
const channel = new BroadcastChannel(CHANNEL);

export function announce(type, detail = {}) {
  channel.postMessage({ type, ...detail, at: Date.now() });
}
