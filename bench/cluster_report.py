#!/usr/bin/env python3
"""The table of bench/cluster.sh: one column per configuration, the main metric(s) of each
scenario, server CPU summed over the nodes, and peak RSS per node. The ratio columns compare
two configurations that differ in one thing, oriented so that > 1 means the second did
better: S3 vs disk (sqlite-s3 / sqlite-disk), PostgreSQL vs SQLite (pg-s3-1 / sqlite-s3),
redirect vs proxied pulls (pg-s3-1-redir / pg-s3-1) and 3 nodes vs 1 (pg-s3-3 / pg-s3-1;
the issue's target for throughput is >= 0.90).

Usage: cluster_report.py RESULTS.jsonl [ENVIRONMENT.txt]
"""

import json
import sys
from collections import OrderedDict

CONFIGS = ["reference", "sqlite-disk", "sqlite-s3", "pg-s3-1", "pg-s3-3", "pg-s3-1-redir"]
# (scenario, metric) shown, in order; everything else stays in results.jsonl.
MAIN = OrderedDict(
    [
        ("catalog-walk", ["pages_per_s@500", "page_p50_ms@500"]),
        ("blob-push/monolithic", ["throughput_mb_s", "blob_p99_ms"]),
        ("blob-push/chunked", ["throughput_mb_s", "blob_p99_ms"]),
        ("blob-pull", ["throughput_mb_s", "blob_p99_ms"]),
        ("pull-storm", ["throughput_mb_s", "client_p99_ms"]),
        ("manifest-head", ["req_per_s", "p99_ms"]),
        ("mixed", ["ops_per_s", "push_p99_ms", "manifest_get_p99_ms"]),
        ("describe-images", ["pages_per_s", "lookups_per_s", "lookup_p99_ms"]),
    ]
)
UNITS = {}
# (column title, baseline, candidate)
RATIOS = [
    ("S3 vs disk", "sqlite-disk", "sqlite-s3"),
    ("PG vs SQLite", "sqlite-s3", "pg-s3-1"),
    ("redirect vs not", "pg-s3-1", "pg-s3-1-redir"),
    ("3 nodes vs 1", "pg-s3-1", "pg-s3-3"),
]


def fmt(v):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    lines = []
    with open(sys.argv[1]) as f:
        for raw in f:
            raw = raw.strip()
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    pass
    # values[(scenario, server)][metric] = value; better[metric] = higher/lower/none
    values, better = {}, {}
    for line in lines:
        key = (line.get("scenario"), line.get("server"))
        slot = values.setdefault(key, {})
        for m in line.get("metrics", []):
            slot[m["name"]] = m["value"]
            better[m["name"]] = m.get("better", "none")
            UNITS[m["name"]] = m.get("unit", "")
    present = [c for c in CONFIGS if any(k[1] == c for k in values)]

    def get(scen, server, metric):
        return values.get((scen, server), {}).get(metric)

    def node_values(scen, server, prefix):
        slot = values.get((scen, server), {})
        out, i = [], 1
        while f"{prefix}_node{i}" in slot:
            out.append(slot[f"{prefix}_node{i}"])
            i += 1
        return out

    def ratio(metric, one, three):
        if one is None or three is None or one == 0 or three == 0:
            return "—"
        b = better.get(metric, "none")
        if b == "higher":
            return f"{three / one:.2f}×"
        if b == "lower":
            return f"{one / three:.2f}×"
        return "—"

    out = []
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            out.extend("    " + l.rstrip() for l in f)
        out.append("")
    ratios = [r for r in RATIOS if r[1] in present and r[2] in present]
    head = "| scenario | metric | " + " | ".join(present + [r[0] for r in ratios]) + " |"
    out.append(head)
    out.append("|" + "---|" * (len(present) + len(ratios) + 2))
    dashes = " | ".join("—" for _ in ratios)
    for scen, metrics in MAIN.items():
        if not any((scen, c) in values for c in present):
            continue
        rows = []
        for m in metrics + ["errors"]:
            arrow = {"higher": " ↑", "lower": " ↓"}.get(better.get(m, "none"), "")
            unit = UNITS.get(m, "")
            cells = []
            for c in present:
                v = get(scen, c, m)
                if v is None and get(scen, c, "run_failed"):
                    cells.append("FAILED")
                else:
                    cells.append(fmt(v))
            rows.append(
                (f"{m} ({unit}){arrow}" if unit else f"{m}{arrow}", cells,
                 " | ".join(ratio(m, get(scen, b, m), get(scen, c, m)) for _, b, c in ratios))
            )
        cpu = []
        rss = []
        for c in present:
            v = node_values(scen, c, "cpu_s")
            cpu.append(fmt(sum(v)) if v else "—")
            r = node_values(scen, c, "peak_rss_mib")
            rss.append(" / ".join(f"{x:.0f}" for x in r) if r else "—")
        rows.append(("server CPU, all nodes (s)", cpu, dashes))
        rows.append(("peak RSS per node (MiB)", rss, dashes))
        for prefix, label in [
            ("haproxy_cpu_s", "HAProxy CPU (s)"),
            ("postgres_cpu_s", "PostgreSQL CPU (s)"),
            ("garage_cpu_s", "Garage CPU (s)"),
        ]:
            cells = [fmt(sum(node_values(scen, c, prefix))) if node_values(scen, c, prefix) else "—" for c in present]
            rows.append((label, cells, dashes))
        load = [fmt(get(scen, c, "loadavg_1m_after")) for c in present]
        rows.append(("load average (1 min) after", load, dashes))
        for i, (label, cells, r) in enumerate(rows):
            name = scen if i == 0 else ""
            out.append(f"| {name} | {label} | " + " | ".join(cells) + (f" | {r} |" if ratios else " |"))
    # Memory at rest and over the whole configuration.
    for scen, metric, label in [
        ("idle", "idle_rss_mib", "idle RSS per node (MiB)"),
        ("lifetime", "vmhwm_mib", "VmHWM per node over the run (MiB)"),
    ]:
        cells = []
        for c in present:
            v = node_values(scen, c, metric)
            cells.append(" / ".join(f"{x:.0f}" for x in v) if v else "—")
        out.append(f"| {scen} | {label} | " + " | ".join(cells) + (f" | {dashes} |" if ratios else " |"))
    print("\n".join(out))


if __name__ == "__main__":
    main()
