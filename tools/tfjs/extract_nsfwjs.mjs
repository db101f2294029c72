// npm nsfwjs ships its TF.js models inside JS modules (model.min.js exports the model.json
// object, each group*-shard*.min.js a base64 string) so that bundlers inline them. This writes
// them back out as model.json + .bin shards under OUT_DIR/<model>/ for Cairn and reference.mjs.
//   node extract_nsfwjs.mjs [OUT_DIR]      (default tools/tfjs/out/nsfwjs)
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const modelsDir = join(here, 'node_modules', 'nsfwjs', 'dist', 'models');
const out = process.argv[2] ?? join(here, 'out', 'nsfwjs');
for (const name of readdirSync(modelsDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)) {
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  const model = require(join(modelsDir, name, 'model.min.js'));
  for (const group of model.weightsManifest) {
    for (const p of group.paths) {
      const b64 = require(join(modelsDir, name, p.replace(/\.bin$/, '') + '.min.js'));
      writeFileSync(join(dir, p), Buffer.from(b64, 'base64'));
    }
  }
  writeFileSync(join(dir, 'model.json'), JSON.stringify(model));
  console.log(`${name}: ${join(dir, 'model.json')}`);
}
