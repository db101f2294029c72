#!/usr/bin/env python3
"""The edge tier on one machine, end to end: Redis + 3 `cairn serve` replicas behind HAProxy,
closed-loop load from bench/load (Idempotency-Keys, client retries, an API key).

Phases (each a load run; the harness disrupts the tier while it runs):
  1. baseline      1 replica behind HAProxy (the other two stopped): throughput, p50/p99
  2. scale-out     3 replicas: throughput, p50/p99, ratio to 1 replica
  3. chaos         kill -9 of one replica, then a Redis crash + restart, then the replica back
  4. rolling       SIGTERM each replica in turn (it drains), start it again, wait for ready
  5. live-update   a new model version dropped into the served directory under load
Then, from the replicas' JSON request logs: every key answered 200 must have been computed
exactly once across all replicas (a replayed answer is not a computation).

Checks: no failed request in any phase (a request fails when it never gets a 200 within its
retries); no 5xx other than 503 + Retry-After; no key computed twice; in every phase, every
replica's peak RSS under --rss-base-mib + --rss-per-model-mib x the model versions it holds (1;
2 in the live update, where v1 stays loaded for pinned clients); the live update reached every replica and old-version pinned clients
were answered. Exit status 1 when a check fails.

  python3 deploy/test/scale.py [--quick] [--clients N] [--seconds S]

Needs: target/release/cairn, bench/load (built here), redis-server and haproxy (Debian,
scripts/setup.sh), target/models/mobilenetv2.onnx (tools/build_mobilenetv2.py).
Results: target/scale/results.json; logs in target/scale/.
"""
import argparse, json, os, shutil, signal, socket, subprocess, sys, time, urllib.request, hashlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "target/scale")
# CAIRN_BIN: another build of cairn (e.g. target/debug/cairn, whose profile is optimized too).
CAIRN = os.environ.get("CAIRN_BIN") or os.path.join(ROOT, "target/release/cairn")
LOAD = os.path.join(ROOT, "target/release/cairn-load")
API_KEY = "ck_scale_test_5d1c0e9a"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def get(url, headers=None, timeout=2):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def wait_for(cond, what, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return time.time() - t0
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Redis:
    def __init__(self):
        self.port = free_port()
        self.dir = os.path.join(OUT, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", self.dir],
            stdout=open(os.path.join(OUT, "redis.log"), "a"), stderr=subprocess.STDOUT)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() == b"PONG",
                 "redis")

    def crash(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Replica:
    def __init__(self, n, app, redis_url, keys_file, threads):
        self.n, self.app, self.redis_url, self.keys_file, self.threads = n, app, redis_url, keys_file, threads
        self.port = free_port()
        self.proc = None
        self.peak_rss = 0.0
        self.phase_peak_rss = 0.0  # since the current phase began: where the memory goes
        self.log = os.path.join(OUT, f"replica-{n}.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [CAIRN, "serve", self.app, "--addr", f"127.0.0.1:{self.port}", "--threads", str(self.threads),
             "--idempotency", self.redis_url, "--api-keys", self.keys_file, "--log-format", "json",
             "--drain-seconds", "1.5", "--reload-seconds", "0.5", "--reload-grace", "60", "--max-batch", "8",
             # Bodies + their tensors held at once: 80 MiB covers 64 clients' 602 KB images (73.5 MiB)
             # and is the part of --rss-base-mib that grows with load; more clients get 503s.
             "--max-inflight-bytes", str(80 << 20)],
            stdout=open(self.log + ".out", "a"), stderr=open(self.log, "a"))

    def ready(self):
        return get(self.url + "/readyz")[0] == 200

    def sample(self):
        if self.proc and self.proc.poll() is None:
            rss = rss_mib(self.proc.pid) or 0
            self.peak_rss = max(self.peak_rss, rss)
            self.phase_peak_rss = max(self.phase_peak_rss, rss)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self):
        t0 = time.time()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return time.time() - t0


class Load:
    """One bench/load run in the background, stopped by a file."""

    def __init__(self, label, lb, clients, seconds):
        self.label = label
        self.stop_file = os.path.join(OUT, f"{label}.stop")
        self.keys = os.path.join(OUT, f"{label}.keys")
        if os.path.exists(self.stop_file):
            os.remove(self.stop_file)
        self.t0 = time.time()
        self.proc = subprocess.Popen(
            [LOAD, f"{lb}/v1/models/mobilenetv2/infer", "--shape", "1,3,224,224", "--clients", str(clients),
             "--seconds", str(seconds), "--timeout", "20", "--label", label, "--idempotency", "--retries", "40",
             "--keys-out", self.keys, "--api-key", API_KEY, "--stop-file", self.stop_file],
            stdout=subprocess.PIPE, text=True)

    def elapsed(self):
        return time.time() - self.t0

    def finish(self):
        out, _ = self.proc.communicate()
        if self.proc.returncode != 0:
            raise SystemExit(f"load run {self.label} failed: {out}")
        lines = out.strip().splitlines()
        print("  " + lines[0], flush=True)
        return json.loads(lines[-1])

    def stop(self):
        open(self.stop_file, "w").close()
        return self.finish()


def pack(model, app, version):
    subprocess.run([CAIRN, "pack", model, "-o", os.path.join(app, "models/mobilenetv2"), "--image-size", "224",
                    "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--model-version", version],
                   check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short phases and 16 clients (the bounded run in scripts/test.sh)")
    ap.add_argument("--clients", type=int)
    ap.add_argument("--seconds", type=float, help="length of the baseline, scale-out and live-update runs")
    ap.add_argument("--threads", type=int, default=2, help="kernel threads per replica")
    # Measured on this branch (BENCHMARKS.md, edge tier): base = runtime + 64 clients' bodies in
    # flight; per model = weights, prepacked operands and the batch-8 arena.
    ap.add_argument("--rss-base-mib", type=float, default=130,
                    help="peak RSS a replica may use besides its models (runtime, request bodies in flight)")
    ap.add_argument("--rss-per-model-mib", type=float, default=80,
                    help="peak RSS each loaded model version may add")
    args = ap.parse_args()
    clients = args.clients or (16 if args.quick else 64)
    seconds = args.seconds or (8 if args.quick else 30)
    chaos_seconds = max(12.0, seconds * 1.5)

    for tool in ("redis-server", "redis-cli", "haproxy"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed: run scripts/setup.sh")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    model = os.path.join(ROOT, "target/models/mobilenetv2.onnx")
    if not os.path.exists(model):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools/build_mobilenetv2.py"), model], check=True)
    if not os.path.exists(CAIRN):
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-cli"], cwd=ROOT, check=True)
    # The suite's `cargo test --release --workspace` built it (bench/load/tests); building it
    # again alone would recompile tokio and hyper with a narrower feature set. Rebuild only
    # when it is missing or older than its sources.
    load_sources = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ROOT, "bench/load")) for f in fs]
    if not os.path.exists(LOAD) or max(map(os.path.getmtime, load_sources)) > os.path.getmtime(LOAD):
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-load"], cwd=ROOT, check=True)
    app = os.path.join(OUT, "app")
    os.makedirs(os.path.join(app, "models"))
    open(os.path.join(app, "index.html"), "w").write("<!doctype html><title>scale</title>\n")
    pack(model, app, "v1")
    keys_file = os.path.join(OUT, "keys.txt")
    open(keys_file, "w").write(f"scale-test {hashlib.sha256(API_KEY.encode()).hexdigest()}\n")

    redis = Redis()
    redis.start()
    replicas = [Replica(i + 1, app, f"redis://127.0.0.1:{redis.port}", keys_file, args.threads) for i in range(3)]
    lb_port = free_port()
    lb = f"http://127.0.0.1:{lb_port}"
    env = dict(os.environ, CAIRN_LB_BIND=f"127.0.0.1:{lb_port}", CAIRN_ERRORS=os.path.join(ROOT, "deploy/haproxy/errors"),
               **{f"CAIRN_REPLICA_{r.n}": f"127.0.0.1:{r.port}" for r in replicas})
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", os.path.join(ROOT, "deploy/haproxy/haproxy.cfg")], env=env,
                               stdout=open(os.path.join(OUT, "haproxy.log"), "w"), stderr=subprocess.STDOUT)
    results, failures = {}, []

    def check(cond, msg):
        if not cond:
            failures.append(msg)
            log(f"CHECK FAILED: {msg}")

    def phase_rss():
        peaks = {f"replica_{r.n}": round(r.phase_peak_rss, 1) for r in replicas}
        for r in replicas:
            r.phase_peak_rss = 0.0
        return peaks

    def check_rss(label, peaks, models):
        bound = args.rss_base_mib + args.rss_per_model_mib * models
        for name, mib in peaks.items():
            check(mib < bound, f"{label}: {name} peak RSS {mib:.0f} MiB >= {bound:.0f} MiB "
                               f"({args.rss_base_mib:.0f} base + {models} x {args.rss_per_model_mib:.0f} per model)")

    def run(label, secs, during=None):
        log(f"phase {label}: {clients} clients")
        phase_rss()
        load = Load(label, lb, clients, secs)
        events = during(load) if during else {}
        while load.proc.poll() is None:
            for r in replicas:
                r.sample()
            time.sleep(0.2)
        res = load.finish()
        res["events"] = events
        res["peak_rss_mib"] = phase_rss()
        log(f"  peak RSS MiB in {label}: {res['peak_rss_mib']}")
        check_rss(label, res["peak_rss_mib"], 2 if label == "live-update" else 1)
        bad = {s: n for s, n in res["statuses"].items() if s.startswith("5") and s != "503"}
        check(res["failed"] == 0, f"{label}: {res['failed']} requests failed")
        check(not bad, f"{label}: 5xx other than 503 seen: {bad}")
        check(res["ok"] > 0, f"{label}: no request answered")
        results[label] = res
        return res

    def sleep_sampling(until, load):
        while load.elapsed() < until:
            for r in replicas:
                r.sample()
            time.sleep(0.1)

    try:
        replicas[0].start()
        wait_for(replicas[0].ready, "replica 1 ready", 120)
        wait_for(lambda: get(lb + "/readyz")[0] == 200, "HAProxy routing to replica 1")
        one = run("one-replica", seconds)

        for r in replicas[1:]:
            r.start()
        wait_for(lambda: all(r.ready() for r in replicas), "3 replicas ready", 120)
        time.sleep(1.5)  # rise 2 x inter 500ms: HAProxy marks them up
        three = run("three-replicas", seconds)
        results["scale_ratio"] = {"throughput": three["ok_per_s"] / max(one["ok_per_s"], 1e-9),
                                  "p50": three["p50_ms"] / one["p50_ms"], "p99": three["p99_ms"] / one["p99_ms"]}

        def chaos(load):
            ev = {}
            sleep_sampling(chaos_seconds * 0.25, load)
            replicas[1].kill9()
            ev["replica_2_killed_at_s"] = round(load.elapsed(), 2)
            log(f"  kill -9 replica 2 at {ev['replica_2_killed_at_s']} s")
            sleep_sampling(chaos_seconds * 0.45, load)
            redis.crash()
            ev["redis_crashed_at_s"] = round(load.elapsed(), 2)
            log(f"  Redis killed at {ev['redis_crashed_at_s']} s")
            time.sleep(1.0)
            redis.start()
            ev["redis_back_at_s"] = round(load.elapsed(), 2)
            log(f"  Redis back at {ev['redis_back_at_s']} s")
            sleep_sampling(chaos_seconds * 0.6, load)
            replicas[1].start()
            ev["replica_2_ready_after_s"] = round(wait_for(replicas[1].ready, "replica 2 back", 120), 2)
            return ev

        run("chaos", chaos_seconds, chaos)

        def rolling(load):
            ev = {}
            sleep_sampling(1.0, load)
            for r in replicas:
                took = r.terminate()
                r.start()
                back = wait_for(r.ready, f"replica {r.n} ready", 120)
                time.sleep(1.5)
                ev[f"replica_{r.n}"] = {"drained_and_exited_s": round(took, 2), "ready_again_s": round(back, 2)}
                log(f"  replica {r.n}: SIGTERM -> exited in {took:.1f} s, ready again in {back:.1f} s")
            results["rolling_restart"] = ev
            load_res = load.stop()
            return ev, load_res

        log(f"phase rolling-restart: {clients} clients")
        phase_rss()
        load = Load("rolling-restart", lb, clients, 600)
        ev, res = rolling(load)
        res["events"] = ev
        res["peak_rss_mib"] = phase_rss()
        log(f"  peak RSS MiB in rolling-restart: {res['peak_rss_mib']}")
        check_rss("rolling-restart", res["peak_rss_mib"], 1)
        bad = {s: n for s, n in res["statuses"].items() if s.startswith("5") and s != "503"}
        check(res["failed"] == 0, f"rolling-restart: {res['failed']} requests failed")
        check(not bad, f"rolling-restart: 5xx other than 503 seen: {bad}")
        results["rolling-restart"] = res

        def live_update(load):
            sleep_sampling(seconds * 0.3, load)
            pack(model, app, "v2")
            t0 = time.time()
            log(f"  bundle v2 dropped into {app} at {load.elapsed():.1f} s")
            def everywhere():
                for r in replicas:
                    st, body = get(r.url + "/v1/models", {"Authorization": f"Bearer {API_KEY}"})
                    versions = [m["version"] for m in json.loads(body or b"{}").get("models", [])] if st == 200 else []
                    if versions[:1] != ["v2"] or "v1" not in versions:
                        return False
                return True
            took = wait_for(everywhere, "v2 on every replica, v1 retiring", 60)
            return {"v2_everywhere_after_s": round(took, 2)}

        run("live-update", max(seconds, 10), live_update)
        # A client built against v1 keeps its version during the grace period.
        req = urllib.request.Request(lb + "/v1/models/mobilenetv2/infer", data=bytes(4 * 3 * 224 * 224), method="POST",
                                     headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/octet-stream",
                                              "Cairn-Model-Version": "v1"})
        pinned = json.loads(urllib.request.urlopen(req, timeout=30).read())["version"]
        check(pinned == "v1", f"a v1-pinned client got version {pinned}")
        results["pinned_client_version"] = pinned

        # Exactly once: "answer computed" log lines per key, over every replica's log.
        computed = {}  # key -> replica numbers that computed it
        for r in replicas:
            for line in open(r.log):
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                # Written when the computation finishes, before the answer is stored
                # (api.rs), so every stored answer has its record even if the replica is
                # killed or the handler cancelled while storing or sending it.
                if "idempotency_computed" in ev:
                    computed.setdefault(ev["idempotency_computed"], []).append(r.n)
                check(API_KEY not in line, f"the API key appears in replica {r.n}'s log")
        answered = []
        for label in ("one-replica", "three-replicas", "chaos", "rolling-restart", "live-update"):
            answered += open(os.path.join(OUT, f"{label}.keys")).read().split()
        by_key = [computed.get(k, []) for k in answered]
        # A replica killed with SIGKILL after computing but before storing loses that answer;
        # the client's retry computes it again elsewhere. Unavoidable without a transaction
        # around compute and store, so counted apart; any other repeat is a defect.
        killed = replicas[1].n
        after_kill = [c for c in by_key if len(c) == 2 and killed in c and c.count(killed) == 1]
        once = {"keys_answered": len(answered), "computed_once": sum(1 for c in by_key if len(c) == 1),
                "recomputed_after_kill": len(after_kill),
                "computed_twice_or_more": sum(1 for c in by_key if len(c) > 1) - len(after_kill),
                "no_compute_line": sum(1 for c in by_key if not c)}
        results["exactly_once"] = once
        check(once["computed_twice_or_more"] == 0, f"keys computed more than once: {once}")
        check(once["no_compute_line"] == 0, f"answered keys without a compute record: {once}")
        check(once["recomputed_after_kill"] <= clients, f"more keys recomputed after the kill than requests in flight: {once}")
        results["peak_rss_mib"] = {f"replica_{r.n}": round(r.peak_rss, 1) for r in replicas}
    finally:
        for r in replicas:
            if r.proc and r.proc.poll() is None:
                r.proc.terminate()
                r.proc.wait()
        haproxy.terminate()
        haproxy.wait()
        if redis.proc and redis.proc.poll() is None:
            redis.proc.terminate()
            redis.proc.wait()

    json.dump(results, open(os.path.join(OUT, "results.json"), "w"), indent=1)
    print()
    print(f"{'phase':<16} {'ok/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6} {'retried':>7} {'longest recovery ms':>20}  statuses (attempts)")
    for label in ("one-replica", "three-replicas", "chaos", "rolling-restart", "live-update"):
        r = results.get(label)
        if r:
            print(f"{label:<16} {r['ok_per_s']:>7.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['failed']:>6} {r['retried']:>7} "
                  f"{r['max_recovery_ms']:>20.0f}  {r['statuses'] or '-'} errors in [{r['error_window_s'][0] or '-'}, {r['error_window_s'][1] or '-'}] s")
    if "scale_ratio" in results:
        s = results["scale_ratio"]
        print(f"3 replicas vs 1: throughput x{s['throughput']:.2f}, p50 x{s['p50']:.2f}, p99 x{s['p99']:.2f} "
              f"({os.cpu_count()} cores for all of them)")
    for key in ("exactly_once", "peak_rss_mib", "rolling_restart"):
        if key in results:
            print(f"{key}: {results[key]}")
    if "chaos" in results:
        print(f"chaos events: {results['chaos']['events']}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("scale-out checks passed")


if __name__ == "__main__":
    main()
