#!/usr/bin/env bash
# Builds the npm package @cairn-ml/web (web/package/build.mjs: from web/src, web/sw and the
# wasm builds in target/web-pkg; `npm pack` into target/npm/) and installs the tarball into
# web/node_modules, where the demo PWA (`cairn app build --package`) consumes it like any app.
# Needs the wasm builds (bench/web/build_wasm.sh) and web/'s npm packages (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
node web/package/build.mjs "$@"
(cd web && npm install --no-save --no-audit --no-fund --silent ../target/npm/cairn-ml-web.tgz)
