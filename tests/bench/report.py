#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the log of one `make bench` VM run into bench/results/latest.{md,csv,png}.

Usage: report.py LOG OUTDIR --command CMD --wall SECONDS

LOG holds the lines of tests/bench/run_vm.sh:
  bench-env kernel=... cpus=... rounds=... secs=... warmup=...
  BENCH round=R dev=D case=C metric=M value=V unit=U
  INFO round=R dev=D case=C ...
  FAIL/WARN round=R dev=D case=C ...
  DMESG ...
  bench-done failures=N dmesg_reports=N
Per case and metric: median, min and max over the rounds for each device, the ratio
ours / C of the medians, and the range of the per-round ratios (the two devices ran
back to back in each round, so a round's ratio is a paired comparison).
Prints the markdown table on stdout.
"""
import argparse
import csv
import datetime
import os
import platform
import re
import statistics
import sys

OURS, REF = "vhost-rs-net", "vhost-net"
# (case, metric, label, higher is better)
ROWS = [
    ("tx64", "pps", "TX 64 B", True),
    ("rx64", "pps", "RX 64 B", True),
    ("tx1500", "mbps", "TX 1514 B", True),
    ("rx1500", "mbps", "RX 1514 B", True),
    ("tx64k", "mbps", "TX 64 KiB GSO_TCPV4", True),
    ("tx64kraw", "mbps", "TX 64 KiB raw frame, copy", True),
    ("tx64kzc", "mbps", "TX 64 KiB raw frame, zero-copy", True),
    ("rr64", "rr", "RR 64 B, rate", True),
    ("rr64", "lat_p50", "RR 64 B, median latency", False),
    ("rr64", "lat_p99", "RR 64 B, p99 latency", False),
    ("rr64bp", "rr", "RR 64 B, busy poll 50 us, rate", True),
    ("rr64bp", "lat_p50", "RR 64 B, busy poll 50 us, median latency", False),
]


def kv(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("outdir")
    ap.add_argument("--command", default="make bench")
    ap.add_argument("--wall", type=float, default=0)
    a = ap.parse_args()

    env, done = {}, None
    vals = {}  # (case, metric, dev) -> {round: value}
    units = {}
    fails, warns, dmesg = [], [], []
    for line in open(a.log, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("bench-env "):
            env = kv(line)
        elif line.startswith("BENCH "):
            d = kv(line)
            key = (d["case"], d["metric"], d["dev"])
            vals.setdefault(key, {})[int(d["round"])] = float(d["value"])
            units[(d["case"], d["metric"])] = d["unit"]
        elif line.startswith("FAIL "):
            fails.append(line[5:])
        elif line.startswith("WARN "):
            warns.append(line[5:])
        elif line.startswith("DMESG "):
            dmesg.append(line[6:])
        elif line.startswith("bench-done "):
            done = kv(line)

    results = []
    for case, metric, label, higher in ROWS:
        r = {"case": case, "metric": metric, "label": label, "unit": units.get((case, metric), ""),
             "higher_is_better": higher}
        for tag, dev in (("ref", REF), ("ours", OURS)):
            v = vals.get((case, metric, dev), {})
            xs = sorted(v.values())
            r[tag + "_n"] = len(xs)
            r[tag + "_median"] = statistics.median(xs) if xs else None
            r[tag + "_min"] = xs[0] if xs else None
            r[tag + "_max"] = xs[-1] if xs else None
        if r["ours_median"] is not None and r["ref_median"]:
            r["ratio"] = r["ours_median"] / r["ref_median"]
        else:
            r["ratio"] = None
        ro = vals.get((case, metric, OURS), {})
        rr = vals.get((case, metric, REF), {})
        paired = sorted(ro[k] / rr[k] for k in ro if k in rr and rr[k])
        r["round_ratio_min"] = paired[0] if paired else None
        r["round_ratio_max"] = paired[-1] if paired else None
        results.append(r)

    os.makedirs(a.outdir, exist_ok=True)
    fields = ["case", "metric", "label", "unit", "higher_is_better",
              "ref_n", "ref_median", "ref_min", "ref_max",
              "ours_n", "ours_median", "ours_min", "ours_max",
              "ratio", "round_ratio_min", "round_ratio_max"]
    with open(os.path.join(a.outdir, "latest.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in results:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in fields})

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = [
        "| case | unit | vhost-net (C) median [min–max] | vhost-rs median [min–max] "
        "| ours ÷ C | per-round ratios |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        better = "" if r["higher_is_better"] else " (lower is better)"
        ratio = "-" if r["ratio"] is None else f"**{r['ratio']:.2f}**"
        pr = ("-" if r["round_ratio_min"] is None
              else f"{r['round_ratio_min']:.2f}–{r['round_ratio_max']:.2f}")
        table.append(
            f"| {r['label']}{better} | {r['unit']} "
            f"| {fmt(r['ref_median'])} [{fmt(r['ref_min'])}–{fmt(r['ref_max'])}] "
            f"| {fmt(r['ours_median'])} [{fmt(r['ours_min'])}–{fmt(r['ours_max'])}] "
            f"| {ratio} | {pr} |")

    md = [
        "# vhost-rs benchmark: vhost-rs.ko vs vhost_net.ko",
        "",
        "**These are TCG + debug-kernel figures** (QEMU TCG emulation, KASAN, lockdep, kmemleak;"
        " 2 emulated vCPUs on a shared 2-core host). Absolute numbers mean little; the ratio"
        " between the two modules, measured in the same VM run with interleaved rounds, is the"
        " result.",
        "",
        f"- command: `{a.command}`",
        f"- date: {date}; wall time {a.wall:.0f} s",
        f"- kernel: {env.get('kernel', '?')} (test kernel, scripts/kernel.sh), "
        f"{env.get('cpus', '?')} vCPUs; host {platform.node()} {platform.machine()}",
        f"- rounds: {env.get('rounds', '?')} per case and device, interleaved ABBA;"
        f" {env.get('secs', '?')} s measured after {env.get('warmup', '?')} s warm-up per run",
        "- medians over the rounds, [min–max]; ours ÷ C = ratio of the medians (above 1 = ours"
        " faster, except for latency); per-round ratios: the range of ours ÷ C within each round",
        "- busy polling: off (poll-us 0) but in the rr64bp rows: 50 us on both queues",
        "",
    ] + table + [""]
    # Busy polling against none, per device: the latency target is <= 0.8.
    bp = []
    for tag, dev in (("vhost-net (C)", REF), ("vhost-rs", OURS)):
        a0 = vals.get(("rr64", "lat_p50", dev), {})
        a1 = vals.get(("rr64bp", "lat_p50", dev), {})
        if a0 and a1:
            m0, m1 = statistics.median(a0.values()), statistics.median(a1.values())
            if m0:
                bp.append(f"- {tag}: median RR latency with a 50 us busy poll ÷ without: "
                          f"**{m1 / m0:.2f}** ({fmt(m1)} vs {fmt(m0)} us)")
    if bp:
        md += ["## Busy polling against none, per device", ""] + bp + [""]
    # Zero-copy against copy, per device: the target is >= 1.3.
    zc = []
    for tag, dev in (("vhost-net (C)", REF), ("vhost-rs", OURS)):
        c0 = vals.get(("tx64kraw", "mbps", dev), {})
        c1 = vals.get(("tx64kzc", "mbps", dev), {})
        if c0 and c1:
            m0, m1 = statistics.median(c0.values()), statistics.median(c1.values())
            paired = sorted(c1[k] / c0[k] for k in c1 if k in c0 and c0[k])
            if m0:
                zc.append(f"- {tag}: TX 64 KiB raw frames, zero-copy ÷ copy: "
                          f"**{m1 / m0:.2f}** ({fmt(m1)} vs {fmt(m0)} Mbit/s; per-round "
                          f"{paired[0]:.2f}–{paired[-1]:.2f})")
    if zc:
        md += ["## Zero-copy against copy, per device", "",
               "Both modules reloaded with experimental_zcopytx=1 for the zero-copy rounds; "
               "the copy rounds run with the default (0) in the same VM run.", ""] + zc + [""]
    md += ["## How each case is measured", "",
           "Fake guest (tests/guest.h) set up as QEMU does: tap with IFF_VNET_HDR (header 12 B, "
           "TUNSETOFFLOAD CSUM|TSO4|TSO6, default sndbuf INT_MAX, so vhost_net.ko batches TX into "
           "tun), features VERSION_1|MRG_RXBUF|EVENT_IDX, rings of 256, guest memory in a memfd, "
           "a private netns per run. Driver: tests/bench/vhost_bench.c.", "",
           "- **TX**: the guest keeps the TX ring full (one descriptor per packet: header + frame), "
           "kicks only when EVENT_IDX asks, sleeps on the call eventfd with used_event 3/4 into "
           "the pending chains. The stack drops the frames on the tap interface (unknown "
           "ethertype; the 64 KiB GSO frame is TCP/IPv4 to a foreign MAC). Bottleneck: the vhost "
           "worker (chain walk, copy into an skb, tun, the stack's drop).",
           "- **RX**: a backlog (two AF_PACKET injector threads, PACKET_QDISC_BYPASS, for as long "
           "as the measurement) is queued in the tap (tx_queue_len 1M) while the RX backend is "
           "detached; then the backend is attached and vhost alone moves it into 256 posted "
           "2 KiB mergeable buffers; the guest sleeps and reposts every 64 packets. Timed from "
           "the 256th to the (N-256)th packet. Bottleneck: the vhost worker. (A concurrent "
           "injector could not outrun vhost here: tun dropped nothing, so it measured the "
           "injector.)",
           "- **TX 64 KiB raw** (tx64kraw, tx64kzc): plain 65535-byte frames (no GSO) of an "
           "ethertype nobody handles; the stack frees them unread, without a copy, as a NIC "
           "frees them after DMA (on tx64k, IPv4's handler gets the frame, and the stack copies "
           "a zero-copy frame before delivering it). tx64kzc runs with both modules reloaded "
           "with experimental_zcopytx=1.",
           "- **RR**: one 64 B frame in flight: guest TX → an AF_PACKET responder thread on the "
           "tap interface echoes it → guest RX (interrupt on every RX entry). Round trips/s and "
           "RTT percentiles. Bottleneck: wake-up latency of the three parties.",
           ""]
    if fails or warns or dmesg or not done:
        md += ["## Problems in this run", ""]
        if not done:
            md.append("- the VM run did not finish (no bench-done line)")
        md += [f"- FAIL {x}" for x in fails]
        md += [f"- WARN {x}" for x in warns]
        md += [f"- kernel log: `{x}`" for x in dmesg]
        md.append("")
    with open(os.path.join(a.outdir, "latest.md"), "w") as f:
        f.write("\n".join(md))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: python3-matplotlib missing, no latest.png", file=sys.stderr)
    else:
        rs = [r for r in results if r["ratio"] is not None]
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(rs) + 1.5))
        ys = list(range(len(rs)))[::-1]
        rat = [r["ratio"] for r in rs]
        lo = [r["ratio"] - r["round_ratio_min"] for r in rs]
        hi = [r["round_ratio_max"] - r["ratio"] for r in rs]
        colors = []
        for r in rs:
            good = r["ratio"] >= 1 if r["higher_is_better"] else r["ratio"] <= 1
            colors.append("tab:green" if good else "tab:red")
        ax.barh(ys, rat, xerr=[lo, hi], color=colors, alpha=0.8, capsize=3)
        ax.axvline(1.0, color="black", lw=1)
        ax.set_yticks(ys)
        ax.set_yticklabels([r["label"] + ("" if r["higher_is_better"] else " (lower better)")
                            for r in rs])
        for y, v, r in zip(ys, rat, rs):
            ax.text(max(v, r["round_ratio_max"]) + 0.02, y, f"{v:.2f}", va="center")
        ax.set_xlabel("vhost-rs ÷ vhost-net (median; bars: range of per-round ratios)")
        ax.set_title(f"vhost-rs vs vhost_net.ko — TCG + debug kernel, {env.get('rounds', '?')} rounds")
        fig.tight_layout()
        fig.savefig(os.path.join(a.outdir, "latest.png"), dpi=100)

    print("\n".join(table))
    if fails or dmesg:
        print(f"\n{len(fails)} failed run(s), {len(dmesg)} kernel log report(s): see latest.md")


if __name__ == "__main__":
    main()
