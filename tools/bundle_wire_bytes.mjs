// What a bundle's levels cost over the network: the stored bytes of each level and the
// bytes a server sends with brotli (quality 5, as `cairn serve` and web/test/server.mjs)
// or gzip (level 6), per level and in total.
//
//   node tools/bundle_wire_bytes.mjs DIR [DIR...]   (DIR holds manifest.json and shards/)

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const brotli = (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }).length;
const gzip = (b) => zlib.gzipSync(b, { level: 6 }).length;
const mib = (n) => `${(n / (1 << 20)).toFixed(2)} MiB`;

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error('usage: node tools/bundle_wire_bytes.mjs DIR [DIR...]');
  process.exit(2);
}
for (const dir of dirs) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const levels = manifest.levels.map((l) => ({ name: l.name, stored: 0, br: 0, gzip: 0 }));
  for (const shard of manifest.shards) {
    const bytes = fs.readFileSync(path.join(dir, shard.path));
    const l = levels[shard.level];
    l.stored += bytes.length;
    l.br += brotli(bytes);
    l.gzip += gzip(bytes);
  }
  const total = levels.reduce((t, l) => ({ stored: t.stored + l.stored, br: t.br + l.br, gzip: t.gzip + l.gzip }), { stored: 0, br: 0, gzip: 0 });
  console.log(`${dir}: ${manifest.levels.length} level(s), ${manifest.shards.length} shards`);
  for (const [i, l] of levels.entries()) {
    const share = (k) => `${((100 * l[k]) / total[k]).toFixed(1)}%`;
    console.log(`  level ${i} '${l.name}': stored ${mib(l.stored)} (${share('stored')}), brotli ${mib(l.br)} (${share('br')}), gzip ${mib(l.gzip)} (${share('gzip')})`);
  }
  console.log(`  total: stored ${mib(total.stored)}, brotli ${mib(total.br)}, gzip ${mib(total.gzip)}`);
}
