#!/usr/bin/env bash
# Builds Cairn's browser module five times (and its tokenizer module once: `text`; the
# WebGPU build: `webgpu`) — with wasm SIMD (simd128), with SIMD plus relaxed SIMD (fused
# multiply-add; Chromium 114+, picked when the engine validates it), without SIMD for
# browsers that lack it, and with simd128 or relaxed SIMD plus threads (shared memory and
# atomics, for cross-origin isolated pages; docs/adr/0019, 0034) — and runs wasm-bindgen on
# each. Prints raw/gzip/brotli sizes. `build_wasm.sh simd threads` builds only the named variants.
# Idempotent: installs the wasm32 target, rust-src (the threaded build compiles std with
# atomics) and the wasm-bindgen CLI matching Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (about 3 minutes, once)"
  cargo install wasm-bindgen-cli --version "$want" --locked --quiet
fi
# Every engine build turns LLVM's loop strength reduction off (docs/adr/0038): it rewrites the
# kernels' pointer walks without `inbounds`, so the wasm backend can no longer fold constant
# offsets into the loads' offset immediates, and V8 then spends an `lea` per load (the f32
# GEMM's 4x8 tile: four of its six loads). Off: MobileNetV2 f32 -6%, the text encoder -2%.
WASM_LLVM_FLAGS="-C llvm-args=-disable-lsr"
build() { # name rustflags [cargo args...] [-- rustc args for cairn-web only]; CAIRN_WASM_DIR: target dir name
  local name=$1 flags="$2 $WASM_LLVM_FLAGS" dir=${CAIRN_WASM_DIR:-$1}
  shift 2
  RUSTFLAGS="$flags" cargo rustc --lib --quiet --profile wasm-release --target wasm32-unknown-unknown -p cairn-web --target-dir "target/wasm-$dir" "$@" &&
    wasm-bindgen --target web --out-dir "target/web-pkg/$name" "target/wasm-$dir/wasm32-unknown-unknown/wasm-release/cairn_web.wasm"
}
# std's prebuilt wasm32 library has no atomics, and a shared memory needs every object
# built with them, so std is rebuilt (-Z build-std). RUSTC_BOOTSTRAP=1 lets the stable
# toolchain take that flag: no nightly to install or pin on a fresh machine. The linker
# makes the memory shared and imported (pool workers instantiate the module on it) and
# exports the TLS symbols wasm-bindgen's thread start-up needs; those flags go to the
# final link only, so they do not invalidate the compiled dependencies.
threaded() { # name simd-features
  RUSTC_BOOTSTRAP=1 build "$1" "-C target-feature=+atomics,+bulk-memory,+mutable-globals,$2" -Z build-std=panic_abort,std -- \
    -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=1073741824 \
    -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
}
known=(simd relaxed scalar threads threads-relaxed text webgpu)
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=("${known[@]}")
# (Each step is chained with &&: a variant runs in the background where errexit is off.)
build_variant() { # one of the names below
  local v=$1
  case $v in
    simd) build simd "-C target-feature=+simd128" ;;
    # The WebGPU backend (docs/adr/0022): the simd build plus GpuModel (wgpu over the
    # browser's own WebGPU). Its own build because wgpu adds ~0.5 MB gzip that an app
    # without a GPU path should not download; the worker loads it only when an adapter exists.
    # It shares the simd build's target directory (same flags, same features of every shared
    # dependency: the workspace asks bytemuck for the features wgpu adds), so only the wgpu
    # stack, cairn-gpu and cairn-web compile again; the loop below never runs the two at once.
    webgpu) CAIRN_WASM_DIR=simd build webgpu "-C target-feature=+simd128" --features webgpu ;;
    relaxed) build relaxed "-C target-feature=+simd128,+relaxed-simd" ;;
    scalar) build scalar "" ;;
    # Threads: shared memory and atomics, for cross-origin isolated pages (docs/adr/0019).
    threads) threaded threads "+simd128" ;;
    # The same with relaxed SIMD (docs/adr/0034): what 'auto' runs on isolated pages of
    # engines that validate relaxed SIMD, as the single-threaded relaxed build elsewhere.
    threads-relaxed) threaded threads-relaxed "+simd128,+relaxed-simd" ;;
    # The tokenizer module (crates/cairn-web-text): fetched only for text bundles, one build
    # for every browser (tokenizing gains nothing from SIMD); docs/adr/0026.
    text) RUSTFLAGS="" cargo rustc --lib --quiet --profile wasm-release --target wasm32-unknown-unknown -p cairn-web-text --target-dir target/wasm-text &&
        wasm-bindgen --target web --out-dir target/web-pkg/text target/wasm-text/wasm32-unknown-unknown/wasm-release/cairn_web_text.wasm ;;
  esac
}
for v in "${variants[@]}"; do
  [[ " ${known[*]} " == *" $v "* ]] || { echo "unknown build '$v' (${known[*]})" >&2; exit 2; }
done
# Two builds side by side (CAIRN_WASM_JOBS): an LTO build with codegen-units = 1 spends most
# of its time in single-threaded optimisation of the big crates, so one build alone leaves
# the second core idle; each variant has its own target directory (webgpu shares simd's and
# runs after it in the same job), so no two jobs contend for one.
mkdir -p target/web-pkg
jobs_max=${CAIRN_WASM_JOBS:-2}
build_logged() { # variant: its log and exit code in target/web-pkg, its time on stdout
  local started=$SECONDS
  echo "building the $1 module"
  rm -f "target/web-pkg/build-$1.rc"
  build_variant "$1" > "target/web-pkg/build-$1.log" 2>&1 && echo 0 > "target/web-pkg/build-$1.rc" || echo 1 > "target/web-pkg/build-$1.rc"
  echo "the $1 module: done in $((SECONDS - started)) s (exit $(cat "target/web-pkg/build-$1.rc"))"
}
wants() { [[ " ${variants[*]} " == *" $1 "* ]]; }
for v in "${variants[@]}"; do
  # webgpu runs after simd in the same job (one target directory, one cairn_web.wasm path).
  [ "$v" = webgpu ] && wants simd && continue
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  if [ "$v" = simd ] && wants webgpu; then
    { build_logged simd; build_logged webgpu; } &
  else
    build_logged "$v" &
  fi
done
wait
failed=0
for v in "${variants[@]}"; do
  if [ "$(cat "target/web-pkg/build-$v.rc" 2>/dev/null)" != 0 ]; then
    echo "the $v module failed to build:" >&2; cat "target/web-pkg/build-$v.log" >&2; failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
node -e '
const fs = require("fs"), zlib = require("zlib");
for (const v of process.argv.slice(1)) {
  const name = v === "text" ? "cairn_web_text" : "cairn_web";
  const b = fs.readFileSync(`target/web-pkg/${v}/${name}_bg.wasm`);
  const kib = (n) => (n / 1024).toFixed(0) + " KiB";
  console.log(`${name}.wasm (${v}): ${kib(b.length)} raw, ${kib(zlib.gzipSync(b, { level: 9 }).length)} gzip, ${kib(zlib.brotliCompressSync(b).length)} brotli`);
}' "${variants[@]}"
