#!/usr/bin/env bash
# Access control of /v1 as a client sees it through HAProxy (deploy/haproxy/haproxy.cfg): no key
# and a wrong key get 401, a page from an origin not on the allow-list 403, a key over its rate
# limit 429 + Retry-After; the allowed origin gets CORS headers (preflight included), static
# files and bundles stay public, and the key never appears in the replica's JSON log.
# One replica (the config's other two slots point at a closed port and stay down).
#
#   deploy/test/access.sh        needs target/release/cairn (or $CAIRN_BIN), haproxy,
#                                target/models/mobilenetv2.onnx (tools/build_mobilenetv2.py)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cairn=${CAIRN_BIN:-$root/target/release/cairn}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_200() { for _ in $(seq 600); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.1; done; echo "timed out: $1" >&2; exit 1; }

key=ck_access_demo_3f9c2a7be41d
"$cairn" pack "$root/target/models/mobilenetv2.onnx" -o "$work/app/models/mobilenetv2" --image-size 224 >/dev/null
echo '<!doctype html><title>access</title>' >"$work/app/index.html"
echo "demo $(printf %s "$key" | sha256sum | cut -d' ' -f1)" >"$work/keys.txt"
port=$(free_port)
lb_port=$(free_port)
"$cairn" serve "$work/app" --addr "127.0.0.1:$port" --api-keys "$work/keys.txt" --rate-limit 5 --burst 5 \
  --cors-origin https://app.example --log-format json >"$work/serve.out" 2>"$work/serve.log" &
pids+=($!)
wait_200 "http://127.0.0.1:$port/readyz"
CAIRN_LB_BIND="127.0.0.1:$lb_port" CAIRN_ERRORS="$root/deploy/haproxy/errors" CAIRN_REPLICA_1="127.0.0.1:$port" \
  CAIRN_REPLICA_2=127.0.0.1:9 CAIRN_REPLICA_3=127.0.0.1:9 haproxy -db -f "$root/deploy/haproxy/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
lb="http://127.0.0.1:$lb_port"
wait_200 "$lb/readyz"
sleep 1.5 # rise 2 x inter 500 ms

fails=0
expect() { # expect WANT LABEL CURL-ARGS...
  local want=$1 label=$2
  shift 2
  local got
  got=$(curl -s -o "$work/body" -w '%{http_code}' "$@")
  printf '%-58s %s (want %s)  %s\n' "$label" "$got" "$want" "$(head -c 110 "$work/body" | tr '\n' ' ')"
  [ "$got" = "$want" ] || fails=$((fails + 1))
}
models="$lb/v1/models"
expect 401 "GET /v1/models, no key" "$models"
expect 401 "GET /v1/models, wrong key" -H "Authorization: Bearer ck_wrong_key" "$models"
expect 200 "GET /v1/models, the key" -H "Authorization: Bearer $key" "$models"
expect 403 "GET /v1/models, the key, Origin https://evil.example" -H "Authorization: Bearer $key" -H "Origin: https://evil.example" "$models"
expect 200 "GET /v1/models, the key, Origin https://app.example" -H "Authorization: Bearer $key" -H "Origin: https://app.example" "$models"
allow=$(curl -s -D - -o /dev/null -X OPTIONS -H "Origin: https://app.example" -H "Access-Control-Request-Method: POST" \
  -H "Access-Control-Request-Headers: authorization,idempotency-key,cairn-tensors" "$lb/v1/models/mobilenetv2/infer" |
  tr -d '\r' | grep -i '^access-control-allow-\(origin\|headers\)' | tr '\n' ' ')
echo "preflight from https://app.example: $allow"
case "$allow" in *https://app.example*cairn-tensors* | *cairn-tensors*https://app.example*) ;; *) fails=$((fails + 1)) ;; esac
expect 200 "GET /index.html, no key (static files are public)" "$lb/index.html"
expect 200 "GET /models/mobilenetv2/manifest.json, no key" "$lb/models/mobilenetv2/manifest.json"

# Rate limit 5/s, burst 5: 20 requests at once-ish; the excess gets 429 with Retry-After.
sleep 1.2 # let the bucket refill after the calls above
codes=$(for _ in $(seq 20); do curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $key" "$models"; done | sort | uniq -c | tr '\n' ' ')
echo "20 quick GET /v1/models with the key (5/s, burst 5): $codes"
case "$codes" in *429*) ;; *) fails=$((fails + 1)) ;; esac
retry=$(for _ in $(seq 10); do curl -s -D - -o /dev/null -H "Authorization: Bearer $key" "$models"; done | tr -d '\r' | grep -i '^retry-after' | head -1)
echo "a 429's header: ${retry:-none}"
[ -n "$retry" ] || fails=$((fails + 1))
if grep -q "$key" "$work/serve.log" "$work/serve.out" "$work/haproxy.log"; then
  echo "the key appears in a log"
  fails=$((fails + 1))
else
  echo "the key appears in no log ($(wc -l <"$work/serve.log") replica log lines, $(grep -c '"caller":"demo"' "$work/serve.log") name the caller 'demo')"
fi
[ "$fails" = 0 ] && echo "access checks passed" || { echo "access checks FAILED: $fails"; exit 1; }
