#!/usr/bin/env bash
# Installs the TFLite reference harness's Python packages (tools/tflite/requirements.txt),
# idempotently: nothing is installed when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
want = {}
for line in open("tools/tflite/requirements.txt"):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, ver = line.split("==")
        want[name.strip()] = ver.strip()
sys.exit(0 if all(m.version(n) == v for n, v in want.items()) else 1)
PY
then
  printf '\033[1m== %s\033[0m\n' "pip install -r tools/tflite/requirements.txt"
  python3 -m pip install --quiet --disable-pip-version-check -r tools/tflite/requirements.txt
fi
