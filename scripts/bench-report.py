#!/usr/bin/env python3
"""Parsing and reporting for scripts/bench.sh (standard library only).

  bench-report.py iperf FILE.json   -> "BITS_PER_SECOND BYTES RETRANSMITS SLOWEST_INTERVAL_BPS"
                                       (receiver side; the slowest interval is the client's);
                                       exit 1 with the reason on stderr if the test failed
  bench-report.py ping FILE.txt     -> median RTT in ms of the "time=X ms" lines, then the count
  bench-report.py table RAW.tsv     -> the markdown table and the peer/wireguard-go ratios

RAW.tsv has one measurement per line: round, config, metric, value (a header line first).
Metrics: ab_bps, ba_bps, p4_bps (receiver bits/s), ab_bytes, ba_bytes, ab_cpu_s, ba_cpu_s
(utime+stime of both tunnel processes during that transfer), ping_ms (median of one ping run),
rss_kib (max VmHWM of the two tunnel processes), retransmit counts, the slowest 1 s interval
(NAME_min_interval_bps) and load1 (the 1-minute load average before each configuration). A missing metric (a
failed measurement) is simply absent and shows as "n/a". peer-netstack also has socks_bps and socks_bytes
(curl --socks5 through a's proxy, b→a) and socks_cpu_s: a line of their own under the table. It is reported
beside the others, never in the peer/wireguard-go ratios.
"""

import json
import re
import statistics
import sys

CONFIGS = [
    ("none", "no tunnel"),
    ("wg", "wireguard-go"),
    ("peer-offload", "peer (offload)"),
    ("peer-water", "peer (water)"),
    ("peer-netstack", "peer (netstack)"),
]


def iperf(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: no iperf3 JSON: {e}")
    if doc.get("error"):
        sys.exit(f"{path}: iperf3: {doc['error']}")
    end = doc.get("end", {})
    recv = end.get("sum_received")
    if not recv or "bits_per_second" not in recv:
        sys.exit(f"{path}: iperf3 JSON has no end.sum_received")
    retr = end.get("sum_sent", {}).get("retransmits", 0)
    # The slowest one-second interval tells a stall (a tunnel that stopped for a while)
    # from a transfer that was slow throughout.
    rates = [i["sum"]["bits_per_second"] for i in doc.get("intervals", []) if "sum" in i]
    slowest = min(rates) if rates else 0
    print(f"{recv['bits_per_second']:.0f} {recv['bytes']} {retr} {slowest:.0f}")


def ping(path):
    rtts = []
    with open(path) as f:
        for line in f:
            m = re.search(r"time=([0-9.]+) ms", line)
            if m:
                rtts.append(float(m.group(1)))
    if not rtts:
        sys.exit(f"{path}: no replies")
    print(f"{statistics.median(rtts):.4f} {len(rtts)}")


def load(path):
    data = {}  # config -> metric -> [values in round order]
    with open(path) as f:
        for n, line in enumerate(f):
            fields = line.rstrip("\n").split("\t")
            if n == 0 and fields[0] == "round":
                continue
            if len(fields) != 4:
                sys.exit(f"{path}:{n + 1}: want 4 tab-separated fields, got {len(fields)}")
            _, config, metric, value = fields
            try:
                v = float(value)
            except ValueError:
                sys.exit(f"{path}:{n + 1}: value {value!r} is not a number")
            data.setdefault(config, {}).setdefault(metric, []).append(v)
    return data


def med(values):
    return statistics.median(values) if values else None


def cpu_per_gb(m):
    """Per round: CPU seconds of both single-stream transfers over their GB (1e9 bytes)."""
    per_round = []
    cols = [m.get(k, []) for k in ("ab_cpu_s", "ab_bytes", "ba_cpu_s", "ba_bytes")]
    for ac, ab, bc, bb in zip(*cols):
        if ab + bb > 0:
            per_round.append((ac + bc) / ((ab + bb) / 1e9))
    return per_round


def gbit(values):
    if not values:
        return "n/a"
    s = f"{med(values) / 1e9:.2f}"
    if len(values) > 1:
        s += f" [{min(values) / 1e9:.2f}–{max(values) / 1e9:.2f}]"
    return s


def num(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def table(path):
    data = load(path)
    print("| config | A→B Gbit/s | B→A Gbit/s | 4-stream Gbit/s | ping median ms | CPU s/GB | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for key, label in CONFIGS:
        m = data.get(key)
        if m is None:
            continue
        cpu = med(cpu_per_gb(m)) if key != "none" else None
        rss = med(m.get("rss_kib", []))
        cells = [
            label,
            gbit(m.get("ab_bps", [])),
            gbit(m.get("ba_bps", [])),
            gbit(m.get("p4_bps", [])),
            num(med(m.get("ping_ms", [])), ".3f"),
            "–" if key == "none" else num(cpu, ".2f"),
            "–" if key == "none" else num(None if rss is None else rss / 1024, ".0f"),
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    ns = data.get("peer-netstack")
    if ns is not None:
        print("peer (netstack): a is -driver netstack, b -driver offload; iperf3 in a connects to a's"
              " -forward on 127.0.0.1 (host TCP spliced to a netstack TCP connection); ping is b→a.")
        socks = ns.get("socks_bps", [])
        line = f"peer (netstack) SOCKS5 download b→a (curl --socks5, 1 stream): {gbit(socks)} Gbit/s"
        if socks:
            line += f", {med(socks) / 8 / 1e6:.0f} MB/s"
        cpu = [c / (b / 1e9) for c, b in zip(ns.get("socks_cpu_s", []), ns.get("socks_bytes", [])) if b > 0]
        if cpu:
            line += f", CPU {med(cpu):.2f} s/GB"
        print(line)
        print()
    loads = [v for m in data.values() for v in m.get("load1", [])]
    if loads:
        print(f"1-minute load average before each configuration: {min(loads):.2f}–{max(loads):.2f}"
              " (counts the benchmark's own processes too)")
    stalls = []
    for key, label in CONFIGS:
        for name in ("ab", "ba", "p4"):
            for bps, slow in zip(data.get(key, {}).get(f"{name}_bps", []),
                                 data.get(key, {}).get(f"{name}_min_interval_bps", [])):
                if slow < bps / 4:
                    stalls.append(f"{label} {name} {slow / 1e9:.2f} of {bps / 1e9:.2f} Gbit/s")
    if stalls:
        print("slow intervals (a 1 s interval under a quarter of the mean): " + "; ".join(stalls))
    base = data.get("wg")
    for key, label in (("peer-offload", "peer(offload)"), ("peer-water", "peer(water)")):
        m = data.get(key)
        if m is None or base is None:
            continue
        parts = []
        for metric, name in (("ab_bps", "A→B"), ("ba_bps", "B→A"), ("p4_bps", "4-stream")):
            p, w = med(m.get(metric, [])), med(base.get(metric, []))
            parts.append(f"{name} " + ("n/a" if p is None or not w else f"{p / w:.2f}×"))
        pc, wc = med(cpu_per_gb(m)), med(cpu_per_gb(base))
        parts.append("CPU/GB " + ("n/a" if pc is None or not wc else f"{pc / wc:.2f}×"))
        print(f"{label}/wireguard-go: " + ", ".join(parts))


def main(argv):
    if len(argv) != 3 or argv[1] not in ("iperf", "ping", "table"):
        sys.exit(f"usage: {argv[0]} iperf FILE.json | ping FILE.txt | table RAW.tsv")
    {"iperf": iperf, "ping": ping, "table": table}[argv[1]](argv[2])


if __name__ == "__main__":
    main(sys.argv)
