#!/usr/bin/env python3
"""Renders the benchmark results as Markdown tables with ratios and target verdicts.

usage: report.py RESULTS_DIR (build/bench)   (reads broker.jsonl, operator.json, floor.json if present)
"""

import json
import os
import sys


def load_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_json(path):
    rows = load_lines(path)
    return rows[-1] if rows else None


def ms(us):
    return "—" if us is None else f"{us / 1000:.3f}"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def broker_section(rows):
    out = []
    runs = [r for r in rows if r.get("variant") != "broker-memory"]
    memory = next((r for r in rows if r.get("variant") == "broker-memory"), None)
    if not runs:
        return out, []
    out.append("| load | variant | p50 ms | p99 ms | p99.9 ms | throughput req/s | non-200 | proxy CPU s | req per proxy CPU-s |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    by = {}
    for r in runs:
        by[(r["load"], r["variant"])] = r
        cpu = r.get("cpu_seconds") or 0
        per_cpu = f"{r['requests'] / cpu:,.0f}" if cpu > 0 and r["variant"] != "direct" else "—"
        cpu_text = f"{cpu:.2f}" if r["variant"] != "direct" else f"{cpu:.2f} (upstream)"
        out.append(
            f"| {r['load']} | {r['variant']} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {ms(r['p999_us'])} "
            f"| {r['rps']:,.0f} | {r.get('errors', 0)} | {cpu_text} | {per_cpu} |"
        )
    out.append("")
    out.append("Ratios, same run (broker / other):")
    out.append("")
    out.append("| load | metric | broker/direct | broker/HAProxy | broker/nginx | broker − direct (added) |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: |")
    loads = []
    for r in runs:
        if r["load"] not in loads:
            loads.append(r["load"])
    for load in loads:
        b = by.get((load, "broker"))
        if not b:
            continue
        for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"), ("rps", "throughput")):
            cells = []
            for other in ("direct", "haproxy", "nginx"):
                o = by.get((load, other))
                cells.append(f"{b[key] / o[key]:.2f}" if o and o[key] else "—")
            d = by.get((load, "direct"))
            added = f"{(b[key] - d[key]) / 1000:+.3f} ms" if d and key != "rps" else "—"
            out.append(f"| {load} | {name} | {' | '.join(cells)} | {added} |")
    out.append("")
    targets = []
    b1, d1 = by.get(("1000/s", "broker")), by.get(("1000/s", "direct"))
    if b1 and d1:
        added = (b1["p99_us"] - d1["p99_us"]) / 1000
        targets.append(("Broker p99 added latency at 1,000 req/s < 0.5 ms",
                        f"{added:.3f} ms (broker p99 {ms(b1['p99_us'])} ms, direct {ms(d1['p99_us'])} ms)",
                        added < 0.5))
    bm, hm = by.get(("max", "broker")), by.get(("max", "haproxy"))
    if bm and hm:
        per_core_b = bm["requests"] / bm["cpu_seconds"] if bm.get("cpu_seconds") else 0
        per_core_h = hm["requests"] / hm["cpu_seconds"] if hm.get("cpu_seconds") else 0
        targets.append(("Broker throughput per core ≥ HAProxy's (same checks)",
                        f"closed loop on one core: broker {bm['rps']:,.0f} req/s vs HAProxy {hm['rps']:,.0f} req/s "
                        f"(ratio {bm['rps'] / hm['rps']:.2f}); per CPU-second {per_core_b:,.0f} vs {per_core_h:,.0f} "
                        f"(ratio {per_core_b / per_core_h if per_core_h else 0:.2f})",
                        bm["rps"] >= hm["rps"]))
    if memory:
        hwm_mib = memory["hwm_kib"] / 1024
        out.append(
            f"Broker memory (release build): VmRSS idle {memory['rss_idle_kib'] / 1024:.1f} MiB, "
            f"under load (mid closed-loop run) {(bm or {}).get('rss_kib', 0) / 1024:.1f} MiB, "
            f"VmHWM after all runs {hwm_mib:.1f} MiB; {memory['audit_lines']:,} audit lines written."
        )
        out.append("")
        targets.append(("Broker resident set < 20 MiB", f"VmHWM {hwm_mib:.1f} MiB", hwm_mib < 20))
    return out, targets


def operator_section(op, floor):
    out, targets = [], []
    if not op and not floor:
        return out, targets
    out.append("| measure | operator | floor | operator/floor |")
    out.append("| --- | ---: | ---: | ---: |")
    n = (op or floor)["plugins"]
    o = op.get("converge_seconds") if op else None
    f = floor.get("converge_seconds") if floor else None
    ratio = f"{o / f:.2f}" if o and f else "—"
    out.append(f"| {n} Plugins created → all children + status at generation (s) | "
               f"{o if o is None else f'{o:.1f}'} | {f if f is None else f'{f:.1f}'} | {ratio} |")
    if op:
        out.append(f"| of which creating the Plugins (s) | {op['create_seconds']:.1f} | {floor.get('write_seconds', 0) if floor else 0:.1f} (all writes) | |")
        out.append(f"| operator write counter after convergence and settling | {op['writes_during_convergence']:.0f} | {6 * n} applies + {n} creates | |")
        out.append(f"| operator VmRSS idle, before any Plugin (MiB) | {op['rss_idle_kib'] / 1024:.1f} | | |")
        out.append(f"| operator VmHWM with {n} Plugins (MiB) | {op['hwm_kib'] / 1024:.1f} | | |")
        out.append(f"| steady state {op['steady_seconds']} s: operator's own write counter | {op['steady_operator_writes']:.0f} | | |")
        out.append(f"| steady state: objects of the namespace whose resourceVersion changed (any writer, incl. Deployment status by the deployment controller) | {op['steady_objects_changed_in_namespace']} | | |")
        out.append(f"| steady state: API server APPLY/PATCH/POST/PUT on plugin kinds, whole cluster | {op['steady_apiserver_writes_cluster_wide']} | | |")
        out.append(f"| steady state: reconciles meanwhile | {op['steady_reconciles']:.0f} | | |")
        out.append("")
        if o and f:
            targets.append(("Convergence within 1.5× the floor", f"{o:.1f} s vs {f:.1f} s = {o / f:.2f}×", o / f <= 1.5))
        hwm = op["hwm_kib"] / 1024
        targets.append((f"Operator < 64 MiB resident at {n} Plugins", f"VmHWM {hwm:.1f} MiB", hwm < 64))
        targets.append(("No writes in steady state",
                        f"operator counter {op['steady_operator_writes']:.0f}, namespace objects changed "
                        f"{op['steady_objects_changed_in_namespace']} (API server, whole shared cluster: "
                        f"{op['steady_apiserver_writes_cluster_wide']})",
                        # The target is the operator's writes: its own counter and the API
                        # server's count (which leaves out Deployment status, written by the
                        # deployment controller). Objects changed in the namespace include
                        # that status, so they are reported, not judged.
                        op["steady_operator_writes"] == 0 and op["steady_apiserver_writes_cluster_wide"] == 0))
    return out, targets


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
    lines = []
    broker, t1 = broker_section(load_lines(os.path.join(results, "broker.jsonl")))
    if broker:
        lines += ["### Broker", ""] + broker
    operator, t2 = operator_section(load_json(os.path.join(results, "operator.json")),
                                    load_json(os.path.join(results, "floor.json")))
    if operator:
        lines += ["### Operator", ""] + operator
    targets = t1 + t2
    if targets:
        lines += ["### Targets", "", "| target | measured | verdict |", "| --- | --- | --- |"]
        lines += [f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in targets]
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
