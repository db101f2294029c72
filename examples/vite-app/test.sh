#!/usr/bin/env bash
# The Vite example end to end: install it (npm ci; @cairn-ml/web from the packed tarball,
# target/npm/cairn-ml-web.tgz, made by web/package/build.mjs), put a model bundle in
# public/models, `npm run build` (tsc --noEmit, vite build, cairn-web-sw), then the
# headless-Chromium test. Needs target/release/cairn and target/models/efficientnet_lite0.onnx.
set -euo pipefail
cd "$(dirname "$0")"
root=../..
[ -f "$root/target/npm/cairn-ml-web.tgz" ] || { echo "error: no $root/target/npm/cairn-ml-web.tgz; hint: node web/package/build.mjs"; exit 1; }
# The tarball is rebuilt with every change, so the lockfile must not pin its hash
# (npm would install a stale copy from its cache): drop it if `npm install` wrote one.
node -e '
const fs = require("fs"); const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
const e = lock.packages["node_modules/@cairn-ml/web"];
if (e && e.integrity) { delete e.integrity; fs.writeFileSync("package-lock.json", JSON.stringify(lock, null, 2) + "\n"); }'
# Third-party packages once (again when the lockfile changes); the Cairn package every time,
# from the tarball, exactly as npm unpacks it.
if [ ! -d node_modules/vite ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent
fi
rm -rf node_modules/@cairn-ml/web && mkdir -p node_modules/@cairn-ml/web
tar -xzf "$root/target/npm/cairn-ml-web.tgz" -C node_modules/@cairn-ml/web --strip-components 1
if [ ! -f public/models/efficientnet_lite0/manifest.json ]; then
  "$root/target/release/cairn" pack "$root/target/models/efficientnet_lite0.onnx" -o public/models/efficientnet_lite0 --name efficientnet_lite0 \
    --image-size 224 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --labels "$root/target/models/imagenet_labels.txt" >/dev/null
fi
npm run build --silent
node --test --test-concurrency=1 test/*.test.mjs
