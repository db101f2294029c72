// Bytes as the service worker checks and stores them: SHA-256 (SubtleCrypto) as lowercase
// hex, the digest the bundle format names shards by and `cairn app build` writes as
// precache revisions; and the headers a stored copy keeps.

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Headers to keep on a stored copy: the body is kept decoded, so its transfer encoding and length go. */
export function storedHeaders(headers) {
  const kept = new Headers(headers);
  kept.delete('content-encoding');
  kept.delete('content-length');
  return kept;
}
