"""Figures (PNG) and REPORT.md from the trials of run.py."""

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"none": "#444444", "ftmb": "#1f77b4", "snapshot-only": "#d62728",
          "remote-state": "#2ca02c"}
LABELS = {"none": "no fault tolerance", "ftmb": "FTMB (this project)",
          "snapshot-only": "snapshot-only (Remus/COLO)", "remote-state": "remote state (StatelessNF, Redis)"}
REF = dict(color="#888888", linestyle="--", linewidth=1.2)


def ok(rows, fig):
    return [r for r in rows if r["figure"] == fig and r.get("result") and not r.get("error")]


def fmt(x, nd=1):
    if x is None:
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def ratio(ours, paper):
    """ours/paper; for a (low, high) range: both ratios and whether inside."""
    if ours is None or paper is None:
        return "n/a"
    if isinstance(paper, tuple):
        lo, hi = paper
        inside = "inside" if lo <= ours <= hi else ("below" if ours < lo else "above")
        return f"{ours / lo:.3g}x of low, {ours / hi:.3g}x of high ({inside} the range)"
    return f"{ours / paper:.3g}x"


def paper_str(p, unit):
    if p is None:
        return "no number in the paper"
    if isinstance(p, tuple):
        return f"{fmt(p[0])}-{fmt(p[1])} {unit}"
    return f"{fmt(p)} {unit}"


def fig1(rows, out, paper, md, summary):
    rs = ok(rows, "fig1")
    md.append("## Figure 1: per-packet latency CDF at a fixed offered load (NAT)\n")
    if not rs:
        md.append("No results.\n")
        return
    p = rs[0]["params"]
    md.append(f"`examples/nat.click`, {p['threads']} worker, {p['pps']:,} packets/s offered, "
              f"snapshots every {p['snapshot_ms']} ms, trace {p['trace']['packets']:,} packets / "
              f"{p['trace']['flows']:,} flows. Latency is from the packet's arrival at the input "
              "to its write at egress (after the output logger releases it).\n")
    by = {r["params"]["mode"]: r["result"] for r in rs}
    fig, ax = plt.subplots(figsize=(8, 5))
    base = (by.get("none") or {}).get("latency_us", {}) or {}
    base50 = base.get("p50")
    for mode in ["none", "ftmb", "remote-state", "snapshot-only"]:
        r = by.get(mode)
        if not r or not r.get("latency_cdf_us"):
            continue
        xs = [max(x, 0.1) for x in r["latency_cdf_us"]]
        ys = [i / 100 for i in range(len(xs))]
        ax.plot(xs, ys, color=COLORS[mode], linewidth=2, label=LABELS[mode])
        ax.annotate(LABELS[mode], (xs[50], 0.5), xytext=(4, 6), textcoords="offset points",
                    color=COLORS[mode], fontsize=8, rotation=75)
    if base50 is not None:
        x = base50 + paper["ftmb_median_latency_added_us"]
        ax.axvline(x, color=COLORS["ftmb"], linestyle="--", linewidth=1)
        ax.text(x, 0.03, " paper: FTMB\n median +30 µs", color=COLORS["ftmb"], fontsize=8)
        lo, hi = paper["remote_state_latency_added_us"]
        ax.axvspan(base50 + lo, base50 + hi, color=COLORS["remote-state"], alpha=0.1)
        ax.text(base50 + lo, 0.93, " paper: remote state\n median +100-500 µs",
                color=COLORS["remote-state"], fontsize=8)
        lo, hi = paper["snapshot_only_latency_added_ms"]
        ax.axvspan(base50 + lo * 1e3, base50 + hi * 1e3, color=COLORS["snapshot-only"], alpha=0.1)
        ax.text(base50 + lo * 1e3, 0.93, " paper: snapshot-only\n +8-50 ms",
                color=COLORS["snapshot-only"], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("per-packet latency, input to egress (µs, log scale)")
    ax.set_ylabel("fraction of packets (CDF)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Fig. 1: latency CDF, NAT at {p['pps']:,} packets/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig1_latency_cdf.png", dpi=120)
    plt.close(fig)
    md.append("![Figure 1](fig1_latency_cdf.png)\n")
    md.append("| system | p50 (µs) | p90 (µs) | p99 (µs) | p99.9 (µs) | median added vs no FT (µs) | paper, median added | ratio (ours / paper) |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    refs = {"none": None, "ftmb": ("ftmb_median_latency_added_us", 1.0, "µs"),
            "snapshot-only": ("snapshot_only_latency_added_ms", 1e3, "ms"),
            "remote-state": ("remote_state_latency_added_us", 1.0, "µs")}
    for mode in ["none", "ftmb", "snapshot-only", "remote-state"]:
        r = by.get(mode)
        skipped = next((x.get("skipped") for x in rows if x["figure"] == "fig1"
                        and x["params"].get("mode") == mode and x.get("skipped")), None)
        if not r:
            md.append(f"| {LABELS[mode]} | not run: {skipped or 'failed'} | | | | | | |")
            continue
        lat = r.get("latency_us") or {}
        added = lat.get("p50") - base50 if base50 is not None and lat.get("p50") is not None else None
        if refs[mode] is None:
            md.append(f"| {LABELS[mode]} | {fmt(lat.get('p50'))} | {fmt(lat.get('p90'))} | {fmt(lat.get('p99'))} | {fmt(lat.get('p999'))} | - | - | - |")
            continue
        key, scale, unit = refs[mode]
        pv = paper[key]
        ours = added / scale if added is not None else None
        md.append(f"| {LABELS[mode]} | {fmt(lat.get('p50'))} | {fmt(lat.get('p90'))} | {fmt(lat.get('p99'))} | {fmt(lat.get('p999'))} | {fmt(added)} | {paper_str(pv, unit)} | {ratio(ours, pv)} |")
        summary.append((f"1: median latency added, {LABELS[mode]}", f"{fmt(ours, 2)} {unit}",
                        paper_str(pv, unit), ratio(ours, pv)))
    extra = []
    so = (by.get("snapshot-only") or {}).get("snapshot_only")
    if so:
        extra.append(f"Snapshot-only held up to {so['max_held']:,} outputs at once and released them "
                     f"at {so['snapshots']} snapshot commits ({so['released_at_finish']} at the end of "
                     f"the run); it logged {so['log_records']} access records.")
    rd = (by.get("remote-state") or {}).get("redis")
    if rd:
        extra.append(f"Remote state made {rd['gets']:,} GETs and {rd['sets']:,} SETs to the Redis "
                     f"server ({fmt(rd['round_trips_per_packet'], 2)} round trips per packet, mean "
                     f"{fmt(rd['mean_round_trip_us'])} µs each, {rd['errors']} errors).")
    thr = {m: (by.get(m) or {}).get("median_mpps") for m in by}
    extra.append("Throughput achieved at this load (Mpps): " + ", ".join(
        f"{LABELS[m]} {fmt(v, 4)}" for m, v in thr.items() if v is not None) + ".")
    md.append("\n" + " ".join(extra) + "\n")


def fig2(rows, out, paper, md, summary):
    rs = ok(rows, "fig2")
    md.append("## Figure 2: throughput vs worker threads, without and with fault tolerance\n")
    if not rs:
        md.append("No results.\n")
        return
    p = rs[0]["params"]
    md.append(f"Trace {p['trace']['packets']:,} packets / {p['trace']['flows']:,} flows, read from "
              f"a pcap as fast as the workers take it, {p['repeat']} repetition(s) (median), "
              "snapshots every 50 ms. `ftmb bench --compare-ft` runs each configuration without "
              "and then with FTMB in one process. The shaded band is the paper's 5-30 % overhead "
              "below the no-FT line.\n")
    mbs = []
    for r in rs:
        if r["params"]["middlebox"] not in mbs:
            mbs.append(r["params"]["middlebox"])
    n = len(mbs)
    cols = min(4, n)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.4 * cols, 3.0 * rows_n), squeeze=False)
    md.append("| middlebox | threads | no FT (Mpps) | FTMB (Mpps) | overhead (%) | paper overhead | ratio (ours / paper) |")
    md.append("| --- | --- | --- | --- | --- | --- | --- |")
    overheads = []
    lo, hi = paper["throughput_overhead_pct"]
    for i, mb in enumerate(mbs):
        ax = axes[i // cols][i % cols]
        pts = sorted((r["params"]["threads"], r["result"]) for r in rs if r["params"]["middlebox"] == mb)
        ts = [t for t, _ in pts]
        off = [r["without_ft"]["median_mpps"] for _, r in pts]
        on = [r["with_ft"]["median_mpps"] for _, r in pts]
        ax.fill_between(ts, [x * (1 - hi / 100) for x in off], [x * (1 - lo / 100) for x in off],
                        color=COLORS["ftmb"], alpha=0.12, label="paper: FTMB 5-30 % below")
        ax.plot(ts, off, "o-", color=COLORS["none"], label="no fault tolerance")
        ax.plot(ts, on, "s-", color=COLORS["ftmb"], label="FTMB")
        ax.set_title(mb, fontsize=10)
        ax.set_xlabel("worker threads")
        ax.set_ylabel("throughput (Mpps)")
        ax.set_xticks(ts)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
        for (t, r) in pts:
            ov = 100 * (1 - r["throughput_ratio"])
            overheads.append(ov)
            md.append(f"| {mb} | {t} | {fmt(r['without_ft']['median_mpps'], 3)} | {fmt(r['with_ft']['median_mpps'], 3)} | {fmt(ov)} | {lo:.0f}-{hi:.0f} % | {ratio(ov, (lo, hi)) if ov > 0 else 'no overhead measured'} |")
    for j in range(n, rows_n * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle("Fig. 2: throughput vs worker threads (no FT vs FTMB)")
    fig.tight_layout()
    fig.savefig(out / "fig2_throughput_threads.png", dpi=120)
    plt.close(fig)
    md.append("\n![Figure 2](fig2_throughput_threads.png)\n")
    if overheads:
        med = statistics.median(overheads)
        summary.append(("2: throughput overhead of FT (median over middleboxes x threads)",
                        f"{fmt(med)} % (range {fmt(min(overheads))} to {fmt(max(overheads))} %)",
                        f"{lo:.0f}-{hi:.0f} %", ratio(med, (lo, hi)) if med > 0 else "n/a"))


def fig3(rows, out, paper, md, summary):
    rs = ok(rows, "fig3")
    md.append("## Figure 3: recovery time vs snapshot interval (restore and replay)\n")
    if not rs:
        md.append("No results.\n")
        return
    p = rs[0]["params"]
    md.append(f"`ftmb demo --json`: the four roles as processes (input logger, output logger, "
              f"replica, master) on this host over Unix sockets, NAT with {p['threads']} worker, "
              f"{p['packets']:,} packets at {p['pps']:,} packets/s, the master SIGKILLed 40 % of the "
              "way in. State size is set by the number of flows in the NAT's table. Bars are "
              "means over repetitions; the band is the paper's 40-275 ms.\n")
    flows = sorted({r["params"]["flows"] for r in rs})
    ks = sorted({r["params"]["snapshot_ms"] for r in rs})
    fig, axes = plt.subplots(1, len(flows), figsize=(5 * len(flows), 4), squeeze=False)
    lo, hi = paper["recovery_ms"]
    md.append("| flows | snapshot interval (ms) | detect (ms) | restore (ms) | replay (ms) | total (ms) | packets replayed | lost / duplicated | consistent | paper total | ratio (ours / paper) |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    totals = []

    def mean(xs):
        return statistics.mean(xs) if xs else 0.0

    for i, fl in enumerate(flows):
        ax = axes[0][i]
        det, res, rep = [], [], []
        for k in ks:
            sel = [r["result"] for r in rs if r["params"]["flows"] == fl and r["params"]["snapshot_ms"] == k]
            d = mean([x["recovery_ms"]["detect"] for x in sel])
            s = mean([x["recovery_ms"]["restore"] for x in sel])
            y = mean([x["recovery_ms"]["replay"] for x in sel])
            t = mean([x["recovery_ms"]["total"] for x in sel])
            det.append(d)
            res.append(s)
            rep.append(y)
            totals.append(t)
            lost = sum(x["lost"] for x in sel)
            dup = sum(x["duplicated"] for x in sel)
            cons = all(x["consistent"] for x in sel)
            replayed = mean([x.get("replayed_packets") or 0 for x in sel])
            md.append(f"| {fl:,} | {k} | {fmt(d)} | {fmt(s)} | {fmt(y)} | {fmt(t)} | {fmt(replayed, 0)} | {lost} / {dup} | {cons} | {lo:.0f}-{hi:.0f} ms | {ratio(t, (lo, hi))} |")
        xs = range(len(ks))
        ax.axhspan(lo, hi, color="#888888", alpha=0.12)
        ax.text(len(ks) - 0.5, hi, "paper: 40-275 ms ", ha="right", va="bottom", fontsize=8, color="#555555")
        ax.bar(xs, det, color="#bbbbbb", label="detect")
        ax.bar(xs, res, bottom=det, color="#ff7f0e", label="restore snapshot")
        ax.bar(xs, rep, bottom=[a + b for a, b in zip(det, res)], color=COLORS["ftmb"], label="replay logs")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlabel("snapshot interval (ms)")
        ax.set_ylabel("recovery time (ms)")
        ax.set_title(f"NAT with {fl:,} flows")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Fig. 3: recovery time vs snapshot interval")
    fig.tight_layout()
    fig.savefig(out / "fig3_recovery.png", dpi=120)
    plt.close(fig)
    md.append("\n![Figure 3](fig3_recovery.png)\n")
    if totals:
        summary.append(("3: recovery time (min-max over intervals and state sizes)",
                        f"{fmt(min(totals))}-{fmt(max(totals))} ms", f"{lo:.0f}-{hi:.0f} ms",
                        f"{min(totals) / lo:.2f}x of low .. {max(totals) / hi:.2f}x of high"))


def fig4(rows, out, paper, md, summary):
    rs = ok(rows, "fig4")
    md.append("## Figure 4: snapshot stall vs state size\n")
    if not rs:
        md.append("No results.\n")
        return
    p = rs[0]["params"]
    md.append(f"`examples/gen.click` (Gen: SLOTS shared cells of {p['state_size']} B, 4 accesses per "
              f"packet) under FTMB, {p['threads']} worker, snapshots every {p['snapshot_ms']} ms. The "
              "stall is how long the workers stood still for one snapshot; state bytes are what "
              "the snapshot holds. Shared state is copied on write after the cut (not encoded "
              "inside the stall), so the stall is mostly the workers' barrier and should stay "
              "flat as the state grows; the copying is paid by the accesses that follow a "
              "snapshot, i.e. in figure 2's throughput.\n")
    pts = sorted(((r["result"].get("snapshot_state_bytes") or 0), r) for r in rs)
    xs = [b / 1e6 for b, _ in pts]
    st = [r["result"]["snapshot_stall_ms"] for _, r in pts]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, [s["p50"] for s in st], "o-", color=COLORS["ftmb"], label="median stall")
    ax.plot(xs, [s["p99"] for s in st], "s--", color="#9467bd", label="p99 stall")
    ax.plot(xs, [s["max"] for s in st], "^:", color=COLORS["snapshot-only"], label="max stall")
    ref = paper["snapshot_stall_max_ms"]
    ax.axhline(ref, **REF)
    ax.text(xs[-1] if xs else 0, ref, "paper: up to 6 ms per snapshot ", ha="right", va="bottom",
            fontsize=8, color="#555555")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("state in the snapshot (MB, log scale)")
    ax.set_ylabel("worker stall per snapshot (ms, log scale)")
    ax.set_title("Fig. 4: snapshot stall vs state size (Gen, FTMB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(out / "fig4_snapshot_stall.png", dpi=120)
    plt.close(fig)
    md.append("![Figure 4](fig4_snapshot_stall.png)\n")
    md.append("| slots | state (bytes) | snapshots | stall p50 (ms) | p99 (ms) | max (ms) | paper | ratio of max (ours / paper) |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for b, r in pts:
        s = r["result"]["snapshot_stall_ms"]
        md.append(f"| {r['params']['slots']:,} | {b:,} | {s['count']} | {fmt(s['p50'], 2)} | {fmt(s['p99'], 2)} | {fmt(s['max'], 2)} | up to {ref:.0f} ms | {ratio(s['max'], ref)} |")
    if pts:
        b, r = pts[-1]
        s = r["result"]["snapshot_stall_ms"]
        summary.append((f"4: snapshot stall at the largest state ({b / 1e6:.1f} MB), median / max",
                        f"{s['p50']:.3g} / {s['max']:.3g} ms", f"up to {ref:.0f} ms",
                        ratio(s["max"], ref) + " (max)"))
    md.append("")


def fig5(rows, out, paper, md, summary):
    rs = ok(rows, "fig5")
    md.append("## Figure 5: log bandwidth vs offered load\n")
    if not rs:
        md.append("No results.\n")
        return
    md.append("NAT under FTMB, one worker, at each offered load. Bytes are the wire frames FTMB "
              "sends its loggers: the input log (every input packet as a `Packet` frame) and the "
              "PAL log (packet access logs and batch clock records as `LogBatch` frames). "
              "**The paper gives no number for this figure**, so no reference line is drawn.\n")
    pts = sorted((r["params"]["pps"], r["result"]) for r in rs)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [p / 1e3 for p, _ in pts]
    pal = [r.get("pal_log_bytes_per_s", 0) / 1e6 for _, r in pts]
    inp = [r.get("input_log_bytes_per_s", 0) / 1e6 for _, r in pts]
    ax.plot(xs, inp, "o-", color="#ff7f0e", label="input log")
    ax.plot(xs, pal, "s-", color=COLORS["ftmb"], label="PAL log (access records + clocks)")
    ax.set_xlabel("offered load (thousand packets/s)")
    ax.set_ylabel("log bandwidth (MB/s)")
    ax.set_title("Fig. 5: log bandwidth vs offered load (NAT, FTMB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig5_log_bandwidth.png", dpi=120)
    plt.close(fig)
    md.append("![Figure 5](fig5_log_bandwidth.png)\n")
    md.append("| offered (pps) | achieved (Mpps) | input log (MB/s) | PAL log (MB/s) | PAL bytes per packet | log records per packet |")
    md.append("| --- | --- | --- | --- | --- | --- |")
    for p, r in pts:
        per = r.get("pal_log_bytes", 0) / max(r.get("packets", 1), 1)
        md.append(f"| {p:,} | {fmt(r['median_mpps'], 4)} | {fmt(r.get('input_log_bytes_per_s', 0) / 1e6, 2)} | {fmt(r.get('pal_log_bytes_per_s', 0) / 1e6, 2)} | {fmt(per)} | {fmt(r['log_records_per_packet'], 2)} |")
    if pts:
        p, r = pts[-1]
        summary.append((f"5: log bandwidth at {p:,} pps (PAL + input)",
                        f"{fmt(r.get('pal_log_bytes_per_s', 0) / 1e6, 2)} + {fmt(r.get('input_log_bytes_per_s', 0) / 1e6, 2)} MB/s",
                        "no number in the paper", "n/a"))
    md.append("")


def render(rows, out, paper):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, summary = [], []
    body = []
    for f in (fig1, fig2, fig3, fig4, fig5):
        f(rows, out, paper, body, summary)
        body.append("")
    first = rows[0] if rows else {}
    m = first.get("machine", {})
    sets = sorted({r["set"] for r in rows})
    errors = [r for r in rows if r.get("error") or r.get("skipped")]
    md.append("# Reproducing \"Rollback-Recovery for Middleboxes\" (SIGCOMM 2015): results\n")
    md.append(f"Produced by `paper-eval/run.sh --{sets[0] if sets else 'quick'}` "
              f"({len(rows)} trials, {', '.join(sets)} set) at commit `{first.get('commit', '?')}`, "
              f"{first.get('time', '?')}.\n")
    md.append(f"**Machine:** {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
              f"{m.get('mem_gb', '?')} GiB, Linux {m.get('kernel', '?')}. "
              "This machine is shared with other work and noisy: repeat a trial before trusting "
              "a difference of less than 20-30 %, and compare systems within one run (they ran "
              "back to back on the same traces). The paper ran on dedicated multi-core servers "
              "with 10 GbE NICs; ours is one process per role on one host.\n")
    md.append("Raw rows: `trials.jsonl` (everything, including the latency CDFs) and `trials.csv` "
              "(flattened), one row per trial with the machine, the commit and the parameters.\n")
    md.append("## Summary: our number, the paper's, the ratio\n")
    md.append("| figure: metric | ours | paper | ratio (ours / paper) |")
    md.append("| --- | --- | --- | --- |")
    for s in summary:
        md.append("| " + " | ".join(s) + " |")
    md.append("")
    md.append("## Baselines: what each is and what it can run\n")
    md.append("- **No fault tolerance**: the same runtime with no logging, no snapshots.\n"
              "- **FTMB**: ordered logging (PALs), parallel release by the output logger "
              "(in-process, on its own thread), snapshots every k ms.\n"
              "- **Snapshot-only** (Remus/COLO/Pico style): the same snapshots, no access logging; "
              "the output path (`ftmb_logger::snapshot_only::SnapshotOnlyLink`) holds every output "
              "until a snapshot whose cut is past the output's input packet has been committed. "
              "It runs every middlebox (it needs nothing from the elements).\n"
              "- **Remote state** (StatelessNF style): every `Shared::access` does a `GET` of the "
              "slot (its StateCodec bytes) from a real `redis-server` that the runner starts on a "
              "loopback port, runs the element's update, and `SET`s it back, under the slot's "
              "lock. It runs every middlebox whose state is shared state (NAT, firewall, load "
              "balancer, monitor, gen). What it cannot do: worker-private element state (e.g. a "
              "monitor's per-flow table kept in the element) stays local, and a slot is a "
              "lock domain (a bucket of flows), so each round trip carries the whole bucket rather "
              "than one flow's entry as StatelessNF's per-flow keys would; and it has no "
              "recovery measurement here (recovery would be a new instance connecting to the "
              "store). It is measured only in figure 1.\n")
    if errors:
        md.append("## Trials that did not run or failed\n")
        for r in errors:
            md.append(f"- {r['figure']} {r['label']}: {r.get('error') or r.get('skipped')}")
        md.append("")
    md.extend(body)
    (out / "REPORT.md").write_text("\n".join(md) + "\n")
