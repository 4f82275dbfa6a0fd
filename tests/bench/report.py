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
If the log also holds dev=vhost-rs-net:split (vhost-rs with split_workers=1, see
tests/bench/run_vm.sh), the table gains its columns and its ratio against C, and a
section gives split / single (vhost-rs) per case: the median and range of the per-round
paired ratios. Likewise dev=vhost-rs-net:packed (packed virtqueues, split_workers=1): its
columns, its ratio against C (vhost_net.ko has no packed ring: C stays split), and a
section packed / split (vhost-rs, same workers); and dev=vhost-rs-net:single,packed
(packed, one worker): its columns, ratio, and packed / split against plain vhost-rs.
A line's ring=packed (vhost_bench --packed) counts as the variant word packed. Without
these devices the output is that of the two devices alone.
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
SPLIT = OURS + ":split"  # vhost-rs with split_workers=1: an optional third device
PACKED = OURS + ":packed"  # packed virtqueues, split_workers=1 (= :split,packed)
PACKED1 = OURS + ":single,packed"  # packed virtqueues, one worker
# Optional devices beside the two, in column order:
# (tag, dev, column name, ratio name, legend of the plot)
EXTRAS = [
    ("split", SPLIT, "vhost-rs split", "split", "vhost-rs, split_workers=1"),
    ("packed", PACKED, "vhost-rs packed", "packed", "vhost-rs packed, split_workers=1"),
    ("packed1", PACKED1, "vhost-rs packed, one worker", "packed single",
     "vhost-rs packed, one worker"),
]
# Paired sections, a device against another that ran in the same rounds:
# (tag, numerator tag, denominator tag, heading, what is divided, which is "faster", column)
PAIRS = [
    ("split_vs_ours", "split", "ours", "Split workers against one worker (vhost-rs)",
     "vhost-rs with split_workers=1 ÷ vhost-rs with one worker for both queues", "split",
     "split ÷ single"),
    ("packed_vs_split", "packed", "split",
     "Packed ring against split ring (vhost-rs, same workers)",
     "vhost-rs over packed virtqueues ÷ vhost-rs over split ones, both with split_workers=1",
     "packed", "packed ÷ split"),
    ("packed1_vs_ours", "packed1", "ours",
     "Packed ring against split ring (vhost-rs, one worker)",
     "vhost-rs over packed virtqueues ÷ vhost-rs over split ones, both with one worker for "
     "both queues", "packed", "packed ÷ split"),
]
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
    ("bidi64", "bidi_pps", "TX + RX 64 B at once, sum", True),
    ("bidi64", "bidi_tx_pps", "TX + RX 64 B at once, TX part", True),
    ("bidi64", "bidi_rx_pps", "TX + RX 64 B at once, RX part", True),
]
# Cases not in the default run: their rows appear only when some device measured them.
OPTIONAL_CASES = {"bidi64"}


def kv(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def canon(d):
    """The device of a BENCH line: its dev, with the variant words of a packed vhost-rs in
    one order (:packed,split is :packed) and ring=packed as the word packed."""
    base, _, variant = d["dev"].partition(":")
    words = set(variant.split(",")) - {""}
    if d.get("ring") == "packed":
        words.add("packed")
    if base == OURS and "packed" in words:
        return PACKED1 if "single" in words else PACKED
    return d["dev"]


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def paired_ratios(num, den):
    """Sorted per-round ratios num / den over the rounds both have."""
    return sorted(num[k] / den[k] for k in num if k in den and den[k])


def plot_two(plt, results, env, path):
    """The ratio ours / C per row, one bar each."""
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
    fig.savefig(path, dpi=100)


def plot_extras(plt, results, env, extras, path):
    """The ratios to C of vhost-rs and of each of its variants in the log, a bar each per row."""
    series = [("ratio", "round_ratio_min", "round_ratio_max", "vhost-rs", None)]
    for (tag, _, _, _, legend), hatch in zip(extras, ("//", "xx", "..")):
        series.append((tag + "_ratio", tag + "_round_ratio_min", tag + "_round_ratio_max",
                       legend, hatch))
    rs = [r for r in results if any(r[key] is not None for key, *_ in series)]
    from matplotlib.patches import Patch

    n = len(series)
    step = 0.4 if n == 2 else 0.8 / n
    fig, ax = plt.subplots(figsize=(10, 0.35 * n * len(rs) + 1.8))
    ys = list(range(len(rs)))[::-1]
    for i, (key, lo_key, hi_key, name, hatch) in enumerate(series):
        off = step * ((n - 1) / 2 - i)
        pts = [(y, r) for y, r in zip(ys, rs) if r[key] is not None]
        if not pts:
            continue
        rat = [r[key] for _, r in pts]
        err = [[r[key] - (r[lo_key] if r[lo_key] is not None else r[key]) for _, r in pts],
               [(r[hi_key] if r[hi_key] is not None else r[key]) - r[key] for _, r in pts]]
        colors = ["tab:green" if (r[key] >= 1 if r["higher_is_better"] else r[key] <= 1)
                  else "tab:red" for _, r in pts]
        ax.barh([y + off for y, _ in pts], rat, height=step * 0.95, xerr=err, color=colors,
                alpha=0.8, capsize=2, hatch=hatch, edgecolor="black", linewidth=0.3)
        for (y, r), v in zip(pts, rat):
            top = r[hi_key] if r[hi_key] is not None else v
            ax.text(max(v, top) + 0.02, y + off, f"{v:.2f}", va="center", fontsize=8)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlim(0, ax.get_xlim()[1] * 1.06)  # room for the labels right of the bars
    ax.set_yticks(ys)
    ax.set_yticklabels([r["label"] + ("" if r["higher_is_better"] else " (lower better)")
                        for r in rs])
    ax.set_xlabel("÷ vhost-net (median; bars: range of per-round ratios)")
    what = ("one worker and split" if [e[0] for e in extras] == ["split"]
            else "one worker and " + ", ".join(e[3] for e in extras))
    ax.set_title(f"vhost-rs, {what}, vs vhost_net.ko — TCG + debug kernel, "
                 f"{env.get('rounds', '?')} rounds", fontsize=10)
    ax.legend(handles=[Patch(facecolor="lightgrey", edgecolor="black", hatch=hatch, label=name)
                       for _, _, _, name, hatch in series], loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


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
            key = (d["case"], d["metric"], canon(d))
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

    extras = [e for e in EXTRAS if any(dev == e[1] for (_, _, dev) in vals)]
    tags = {"ref", "ours"} | {e[0] for e in extras}
    pairs = [p for p in PAIRS if p[1] in tags and p[2] in tags]
    devices = [("ref", REF), ("ours", OURS)] + [(e[0], e[1]) for e in extras]
    dev_of = dict(devices)
    results = []
    for case, metric, label, higher in ROWS:
        if case in OPTIONAL_CASES and not any(vals.get((case, metric, d)) for _, d in devices):
            continue
        r = {"case": case, "metric": metric, "label": label, "unit": units.get((case, metric), ""),
             "higher_is_better": higher}
        for tag, dev in devices:
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
        for tag, dev, *_ in extras:
            rs = vals.get((case, metric, dev), {})
            if r[tag + "_median"] is not None and r["ref_median"]:
                r[tag + "_ratio"] = r[tag + "_median"] / r["ref_median"]
            else:
                r[tag + "_ratio"] = None
            paired = paired_ratios(rs, rr)
            r[tag + "_round_ratio_min"] = paired[0] if paired else None
            r[tag + "_round_ratio_max"] = paired[-1] if paired else None
        # A variant against another (split workers against one, packed against split): each
        # round's pair ran back to back.
        for tag, num, den, *_ in pairs:
            paired = paired_ratios(vals.get((case, metric, dev_of[num]), {}),
                                   vals.get((case, metric, dev_of[den]), {}))
            r[tag + "_n"] = len(paired)
            r[tag + "_median"] = statistics.median(paired) if paired else None
            r[tag + "_min"] = paired[0] if paired else None
            r[tag + "_max"] = paired[-1] if paired else None
        results.append(r)

    os.makedirs(a.outdir, exist_ok=True)
    fields = ["case", "metric", "label", "unit", "higher_is_better",
              "ref_n", "ref_median", "ref_min", "ref_max",
              "ours_n", "ours_median", "ours_min", "ours_max",
              "ratio", "round_ratio_min", "round_ratio_max"]
    for tag, *_ in extras:
        fields += [tag + "_n", tag + "_median", tag + "_min", tag + "_max",
                   tag + "_ratio", tag + "_round_ratio_min", tag + "_round_ratio_max"]
        for p in pairs:
            if p[1] == tag:
                fields += [p[0] + "_n", p[0] + "_median", p[0] + "_min", p[0] + "_max"]
    with open(os.path.join(a.outdir, "latest.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in results:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in fields})

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = [
        "| case | unit | vhost-net (C) median [min–max] | vhost-rs median [min–max] "
        + "".join(f"| {e[2]} median [min–max] " for e in extras)
        + "| ours ÷ C | per-round ratios |"
        + "".join(f" {e[3]} ÷ C | per-round ratios |" for e in extras),
        "|---|---|---|---|---|---|" + "---|---|---|" * len(extras),
    ]
    for r in results:
        better = "" if r["higher_is_better"] else " (lower is better)"
        ratio = "-" if r["ratio"] is None else f"**{r['ratio']:.2f}**"
        pr = ("-" if r["round_ratio_min"] is None
              else f"{r['round_ratio_min']:.2f}–{r['round_ratio_max']:.2f}")
        line = (f"| {r['label']}{better} | {r['unit']} "
                f"| {fmt(r['ref_median'])} [{fmt(r['ref_min'])}–{fmt(r['ref_max'])}] "
                f"| {fmt(r['ours_median'])} [{fmt(r['ours_min'])}–{fmt(r['ours_max'])}] ")
        for t, *_ in extras:
            line += f"| {fmt(r[t + '_median'])} [{fmt(r[t + '_min'])}–{fmt(r[t + '_max'])}] "
        line += f"| {ratio} | {pr} |"
        for t, *_ in extras:
            sratio = "-" if r[t + "_ratio"] is None else f"**{r[t + '_ratio']:.2f}**"
            spr = ("-" if r[t + "_round_ratio_min"] is None
                   else f"{r[t + '_round_ratio_min']:.2f}–{r[t + '_round_ratio_max']:.2f}")
            line += f" {sratio} | {spr} |"
        table.append(line)

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
    ] + (["- vhost-rs split: vhost-rs.ko with split_workers=1 (RX and TX on two workers, no"
          " lock shared between the queues), a third device in the same rounds; split ÷ C ="
          " ratio of its median to the C module's, per-round ratios likewise"]
         if "split" in tags else []) + (
        ["- vhost-rs packed: vhost-rs.ko over packed virtqueues (VIRTIO_F_RING_PACKED,"
         " vhost_bench --packed) with split_workers=1: vhost-rs split but for the ring;"
         " vhost_net.ko has no packed ring, so packed ÷ C sets ours packed against C split"]
        if "packed" in tags else []) + (
        ["- vhost-rs packed, one worker: the same with split_workers=0: vhost-rs but for the"
         " ring; packed single ÷ C against C split likewise"] if "packed1" in tags else []) + [
        "",
    ] + table + [""]
    # Split workers against one, packed against split, on vhost-rs: paired per round (the
    # two ran in the same round).
    for tag, _, _, heading, what, faster, col in pairs:
        sv = [r for r in results if r[tag + "_median"] is not None]
        if sv:
            text = (f"{what}, per case: the median of the per-round ratios (each round ran both "
                    f"back to back) and their range. Above 1 = {faster} faster, except for "
                    "latency.")
            md += [f"## {heading}", "", text, "",
                   f"| case | unit | {col}, median of per-round ratios | per-round range "
                   "| rounds |",
                   "|---|---|---|---|---|"]
            for r in sv:
                better = "" if r["higher_is_better"] else " (lower is better)"
                md.append(f"| {r['label']}{better} | {r['unit']} "
                          f"| **{r[tag + '_median']:.2f}** "
                          f"| {r[tag + '_min']:.2f}–{r[tag + '_max']:.2f} "
                          f"| {r[tag + '_n']} |")
            md.append("")
    # Busy polling against none, per device: the latency target is <= 0.8.
    named = [("vhost-net (C)", REF), ("vhost-rs", OURS)] + [(e[2], e[1]) for e in extras]
    bp = []
    for tag, dev in named:
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
    for tag, dev in named:
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
           ] + (["- **TX + RX at once** (bidi64): the RX backlog is queued as for RX, then the "
                 "RX backend is attached and the guest keeps the TX ring full, both at once; one "
                 "guest loop serves both rings (TX as in TX, RX as in RX). One window for both: "
                 "from the warm-up's end for the measured time, or until the backlog is nearly "
                 "gone. TX and RX packets/s over that window, and their sum. Within it vhost "
                 "alone is busy, with work always waiting on both queues: one worker for both "
                 "(vhost_net.ko, vhost-rs) or one each (vhost-rs split)."]
                if any(r["case"] == "bidi64" for r in results) else []) + (
           ["- **Packed ring** (vhost-rs packed): the same cases over packed virtqueues "
            "(VIRTIO_F_RING_PACKED; vhost_bench --packed), driven as Linux's packed driver: "
            "each buffer made available by its descriptor's flags, a kick when the device "
            "event area asks (EVENT_IDX: DESC), the interrupt point in the driver event area "
            "(DESC at the used position N descriptors ahead) where the split ring uses "
            "used_event. The split rows are unchanged."]
           if "packed" in tags or "packed1" in tags else []) + [
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
        if extras:
            plot_extras(plt, results, env, extras, os.path.join(a.outdir, "latest.png"))
        else:
            plot_two(plt, results, env, os.path.join(a.outdir, "latest.png"))

    print("\n".join(table))
    if fails or dmesg:
        print(f"\n{len(fails)} failed run(s), {len(dmesg)} kernel log report(s): see latest.md")


if __name__ == "__main__":
    main()
