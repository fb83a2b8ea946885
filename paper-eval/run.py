#!/usr/bin/env python3
"""Reproduce the FTMB paper's figures, side by side with the baselines.

    paper-eval/run.sh --quick      # minutes on 2 cores
    paper-eval/run.sh --full       # longer, more repetitions, larger traces

Runs every trial of experiments.py (each one `ftmb` invocation printing one
JSON object), appends one row per trial to results/trials.jsonl and
results/trials.csv (machine, commit, parameters, numbers), renders the
figures (results/*.png) and writes results/REPORT.md. `--only fig1,fig3`
runs some figures; `--plot-only` re-renders from the existing trials.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import experiments  # noqa: E402
import report  # noqa: E402

WORK = HERE / "work"
FIGS = ["fig1", "fig2", "fig3", "fig4", "fig5"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "mem_gb": mem_gb,
    }


def commit():
    try:
        rev = sh(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"]).strip()
        dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]).strip()
        return rev + ("-dirty" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


class Redis:
    """A redis-server on a free loopback port, for the remote-state baseline."""

    def __init__(self):
        self.proc = None
        self.addr = None
        self.why_not = None

    def start(self):
        exe = shutil.which("redis-server")
        if exe is None and shutil.which("apt-get") and os.geteuid() == 0:
            print("installing redis-server with apt-get ...", flush=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            exe = shutil.which("redis-server")
        if exe is None:
            self.why_not = "redis-server is not installed (apt-get install redis-server)"
            return False
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addr = f"127.0.0.1:{port}"
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        version = sh([exe, "--version"]).strip()
                        print(f"redis: {version.split(' sha=')[0]} on {self.addr} "
                              f"(pid {self.proc.pid})", flush=True)
                        return True
            except OSError:
                time.sleep(0.05)
        self.why_not = "redis-server did not answer PING"
        self.stop()
        return False

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


class Runner:
    def __init__(self, args, ftmb):
        self.args = args
        self.ftmb = ftmb
        self.set = "full" if args.full else "quick"
        self.sweeps = experiments.sets(os.cpu_count() or 1)[self.set]
        self.machine = machine()
        self.commit = commit()
        self.redis = Redis()
        self.rows = []
        self.done = 0
        self.total = 0
        self.t0 = time.monotonic()

    # --- traces ---------------------------------------------------------
    def trace(self, packets, flows):
        WORK.mkdir(parents=True, exist_ok=True)
        path = WORK / f"trace-{packets}p-{flows}f.pcap"
        if not path.exists():
            tmp = path.with_suffix(".pcap.tmp")
            sh([self.ftmb, "gen-trace", str(tmp), "--packets", str(packets),
                "--flows", str(flows), "--seed", "1"])
            tmp.rename(path)
        return path

    # --- trials ---------------------------------------------------------
    def plan(self):
        """Every trial as (figure, label, params, argv-builder)."""
        s, only = self.sweeps, self.args.only
        trials = []
        if "fig1" in only:
            f = s["fig1"]
            cfg, vars_ = experiments.MIDDLEBOXES[f["middlebox"]]
            for mode in experiments.MODES:
                trials.append(("fig1", f"{f['middlebox']} {mode} @ {f['pps']} pps",
                               dict(middlebox=f["middlebox"], mode=mode, threads=f["threads"],
                                    pps=f["pps"], snapshot_ms=f["snapshot_ms"],
                                    trace=f["trace"], repeat=f["repeat"]),
                               self.bench_argv(cfg, vars_, f["trace"], mode=mode,
                                               threads=f["threads"], pps=f["pps"],
                                               snapshot_ms=f["snapshot_ms"],
                                               repeat=f["repeat"])))
        if "fig2" in only:
            f = s["fig2"]
            for mb in f["middleboxes"]:
                cfg, vars_ = experiments.MIDDLEBOXES[mb]
                for t in f["threads"]:
                    trials.append(("fig2", f"{mb} {t} thread(s), without/with FT",
                                   dict(middlebox=mb, threads=t, repeat=f["repeat"],
                                        trace=f["trace"], snapshot_ms=50),
                                   self.bench_argv(cfg, vars_, f["trace"], compare=True,
                                                   threads=t, repeat=f["repeat"])))
        if "fig3" in only:
            f = s["fig3"]
            for flows in f["flows"]:
                for k in f["snapshot_ms"]:
                    for r in range(f.get("repeat", 1)):
                        argv = [self.ftmb, "demo", "--json", "--packets", str(f["packets"]),
                                "--flows", str(flows), "--pps", str(f["pps"]),
                                "--threads", str(f["threads"]), "--snapshot-ms", str(k)]
                        trials.append(("fig3", f"recovery, {flows} flows, snapshots every {k} ms"
                                       + (f" (#{r + 1})" if f.get("repeat", 1) > 1 else ""),
                                       dict(middlebox="nat", flows=flows, snapshot_ms=k,
                                            packets=f["packets"], pps=f["pps"],
                                            threads=f["threads"], trial=r),
                                       lambda argv=argv: argv))
        if "fig4" in only:
            f = s["fig4"]
            cfg, vars_ = experiments.MIDDLEBOXES["gen"]
            for slots in f["slots"]:
                v = dict(vars_, SLOTS=str(slots), STATE_SIZE=str(f["state_size"]))
                trials.append(("fig4", f"gen, {slots} x {f['state_size']} B of shared state",
                               dict(middlebox="gen", slots=slots, state_size=f["state_size"],
                                    threads=f["threads"], snapshot_ms=f["snapshot_ms"],
                                    pps=f.get("pps"), trace=f["trace"]),
                               self.bench_argv(cfg, v, f["trace"], mode="ftmb",
                                               threads=f["threads"], pps=f.get("pps"),
                                               snapshot_ms=f["snapshot_ms"], repeat=1)))
        if "fig5" in only:
            f = s["fig5"]
            cfg, vars_ = experiments.MIDDLEBOXES["nat"]
            for pps in f["pps"]:
                tr = {"packets": int(pps * f["seconds"]), "flows": f["flows"]}
                trials.append(("fig5", f"nat, FTMB log bandwidth @ {pps} pps",
                               dict(middlebox="nat", pps=pps, threads=f["threads"],
                                    snapshot_ms=f["snapshot_ms"], trace=tr),
                               self.bench_argv(cfg, vars_, tr, mode="ftmb",
                                               threads=f["threads"], pps=pps,
                                               snapshot_ms=f["snapshot_ms"], repeat=1)))
        return trials

    def bench_argv(self, cfg, vars_, trace, mode=None, compare=False, threads=1, pps=None,
                   snapshot_ms=50, repeat=1):
        def build():
            path = self.trace(trace["packets"], trace["flows"])
            argv = [self.ftmb, "bench", str(ROOT / cfg), f"IN={path}"]
            argv += [f"{k}={v}" for k, v in vars_.items()]
            argv += ["--threads", str(threads), "--repeat", str(repeat),
                     "--snapshot-ms", str(snapshot_ms), "--seed", "7"]
            if compare:
                argv.append("--compare-ft")
            if mode:
                argv += ["--mode", mode]
            if mode == "remote-state":
                argv += ["--redis", self.redis.addr or "unavailable"]
            if pps:
                argv += ["--pps", str(pps)]
            return argv
        return build

    def eta(self, elapsed_per_trial):
        left = (self.total - self.done) * elapsed_per_trial
        return str(datetime.timedelta(seconds=int(left)))

    def run(self):
        trials = self.plan()
        self.total = len(trials)
        needs_redis = any(p.get("mode") == "remote-state" for _, _, p, _ in trials)
        if needs_redis and not self.redis.start():
            print(f"remote-state baseline skipped: {self.redis.why_not}", flush=True)
        print(f"{self.set} set: {self.total} trials on {self.machine['cpu']} "
              f"({self.machine['cores']} cores), commit {self.commit}", flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        jsonl = open(RESULTS / "trials.jsonl", "w")
        try:
            for fig, label, params, build in trials:
                t = time.monotonic()
                row = {"set": self.set, "figure": fig, "label": label,
                       "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "commit": self.commit, "machine": self.machine, "params": params}
                if params.get("mode") == "remote-state" and self.redis.addr is None:
                    row["skipped"] = self.redis.why_not
                    result = None
                else:
                    argv = build()
                    row["argv"] = " ".join(str(a) for a in argv).replace(str(ROOT) + "/", "")
                    try:
                        out = subprocess.run(argv, capture_output=True, text=True,
                                             timeout=self.args.trial_timeout, cwd=ROOT)
                        result = parse_json(out.stdout)
                        if out.returncode != 0 or result is None:
                            row["error"] = (out.stderr.strip().splitlines() or ["no output"])[-1]
                    except subprocess.TimeoutExpired:
                        result, row["error"] = None, f"timed out after {self.args.trial_timeout} s"
                row["result"] = result
                if fig == "fig3" and result and result.get("outputs_in"):
                    shutil.rmtree(result["outputs_in"], ignore_errors=True)
                row["wall_s"] = round(time.monotonic() - t, 2)
                self.rows.append(row)
                jsonl.write(json.dumps(row) + "\n")
                jsonl.flush()
                self.done += 1
                per = (time.monotonic() - self.t0) / self.done
                status = ("SKIPPED: " + row["skipped"]) if "skipped" in row else (
                    ("ERROR: " + row["error"]) if "error" in row else summary(fig, result))
                print(f"[{self.done:>3}/{self.total}] {fig} {label}: {status} "
                      f"({row['wall_s']:.1f} s, ETA {self.eta(per)})", flush=True)
        finally:
            jsonl.close()
            self.redis.stop()
        write_csv(self.rows)
        return self.rows


def parse_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def summary(fig, r):
    if not r:
        return "no result"
    if fig == "fig1":
        lat = r.get("latency_us") or {}
        return f"p50 {lat.get('p50', 0):.1f} us, p99 {lat.get('p99', 0):.1f} us"
    if fig == "fig2":
        return (f"{r['without_ft']['median_mpps']:.3f} -> {r['with_ft']['median_mpps']:.3f} Mpps "
                f"(x{r['throughput_ratio']:.2f})")
    if fig == "fig3":
        rec = r["recovery_ms"]
        return (f"restore {rec['restore']:.1f} + replay {rec['replay']:.1f} = total "
                f"{rec['total']:.1f} ms, consistent {r['consistent']}")
    if fig == "fig4":
        st = r["snapshot_stall_ms"]
        return (f"{r.get('snapshot_state_bytes') or 0} B of state, stall p50 {st['p50']:.2f} "
                f"max {st['max']:.2f} ms")
    if fig == "fig5":
        return (f"PAL {r.get('pal_log_bytes_per_s', 0) / 1e6:.2f} MB/s, input log "
                f"{r.get('input_log_bytes_per_s', 0) / 1e6:.2f} MB/s")
    return "ok"


def flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            continue  # the CDF stays in trials.jsonl
        else:
            out[key] = v
    return out


def write_csv(rows):
    flat = []
    for r in rows:
        f = {k: r.get(k) for k in ("set", "figure", "label", "time", "commit", "wall_s")}
        f.update(flatten(r["machine"], "machine."))
        f.update(flatten(r["params"], "param."))
        f["error"] = r.get("error") or r.get("skipped")
        f.update(flatten(r.get("result"), "result."))
        flat.append(f)
    keys = []
    for f in flat:
        keys += [k for k in f if k not in keys]
    with open(RESULTS / "trials.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(flat)


def build_ftmb(skip):
    exe = ROOT / "target" / "release" / "ftmb"
    if os.environ.get("CARGO_TARGET_DIR"):
        exe = Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "ftmb"
    if not skip:
        print("building ftmb (cargo build --release --bin ftmb) ...", flush=True)
        subprocess.run(["cargo", "build", "--release", "--bin", "ftmb"], cwd=ROOT, check=True)
    if not exe.exists():
        sys.exit(f"{exe} not found: build it with cargo build --release")
    return str(exe)


RESULTS = HERE / "results"


def main():
    global RESULTS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="the quick set (default)")
    g.add_argument("--full", action="store_true", help="the full set")
    ap.add_argument("--only", default=",".join(FIGS), help="figures to run, e.g. fig1,fig3")
    ap.add_argument("--no-build", action="store_true", help="use the ftmb binary already built")
    ap.add_argument("--plot-only", action="store_true", help="re-render from results/trials.jsonl")
    ap.add_argument("--results", default=str(RESULTS), help="results directory")
    ap.add_argument("--trial-timeout", type=int, default=600, help="seconds per trial")
    args = ap.parse_args()
    args.only = [f.strip() for f in args.only.split(",") if f.strip()]
    RESULTS = Path(args.results).resolve()
    if args.plot_only:
        rows = [json.loads(l) for l in open(RESULTS / "trials.jsonl")]
    else:
        ftmb = build_ftmb(args.no_build)
        rows = Runner(args, ftmb).run()
    report.render(rows, RESULTS, experiments.PAPER)
    print(f"wrote {RESULTS / 'REPORT.md'} and the figures beside it")


if __name__ == "__main__":
    main()
