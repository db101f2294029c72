#!/usr/bin/env bash
# Builds Cairn's browser module three times — with wasm SIMD (simd128), with SIMD plus
# relaxed SIMD (fused multiply-add; Chromium 114+, picked when the engine validates it),
# and without SIMD for browsers that lack it — and runs wasm-bindgen on each. Prints
# raw/gzip/brotli sizes. `build_wasm.sh simd` builds only the named variants (the demo runtime
# needs simd, and scalar for browsers without SIMD).
# Idempotent: installs the wasm32 target and the wasm-bindgen CLI matching Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (about 3 minutes, once)"
  cargo install wasm-bindgen-cli --version "$want" --locked --quiet
fi
build() { # name rustflags
  local name=$1 flags=$2
  RUSTFLAGS="$flags" cargo build --quiet --profile wasm-release --target wasm32-unknown-unknown -p cairn-web --target-dir "target/wasm-$name"
  wasm-bindgen --target web --out-dir "target/web-pkg/$name" "target/wasm-$name/wasm32-unknown-unknown/wasm-release/cairn_web.wasm"
}
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(simd relaxed scalar)
declare -A flags=([simd]="-C target-feature=+simd128" [relaxed]="-C target-feature=+simd128,+relaxed-simd" [scalar]="")
for v in "${variants[@]}"; do
  [ -n "${flags[$v]+set}" ] || { echo "unknown variant '$v' (simd, relaxed, scalar)" >&2; exit 2; }
  build "$v" "${flags[$v]}"
done
node -e '
const fs = require("fs"), zlib = require("zlib");
for (const v of process.argv.slice(1)) {
  const b = fs.readFileSync(`target/web-pkg/${v}/cairn_web_bg.wasm`);
  const kib = (n) => (n / 1024).toFixed(0) + " KiB";
  console.log(`cairn_web.wasm (${v}): ${kib(b.length)} raw, ${kib(zlib.gzipSync(b, { level: 9 }).length)} gzip, ${kib(zlib.brotliCompressSync(b).length)} brotli`);
}' "${variants[@]}"
