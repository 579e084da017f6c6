#!/usr/bin/env python3
"""Renders the benchmark results as Markdown tables with ratios and target verdicts.

usage: report.py RESULTS_DIR (build/bench)   (reads broker.jsonl, drift.json, ready.json and
plugins-N/{floor,operator}-R.json if present)
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
    if ok is None:
        return "**not judged**"
    return "**met**" if ok else "**missed**"


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def per_cpu(r):
    cpu = r.get("cpu_seconds") or 0
    return r["requests"] / cpu if cpu > 0 else None


def broker_section(rows):
    """Medians over the rounds; ratios are taken within each round, then their median."""
    out = []
    runs = [r for r in rows if "load" in r]
    memory = next((r for r in rows if r.get("variant") == "broker-memory"), None)
    idle = [r for r in rows if r.get("variant", "").startswith("broker-idle")]
    if not runs:
        return out, []
    rounds = {}
    loads, variants = [], []
    for r in runs:
        rounds.setdefault((r["load"], r["variant"]), []).append(r)
        if r["load"] not in loads:
            loads.append(r["load"])
        if r["variant"] not in variants:
            variants.append(r["variant"])
    count = max(len(v) for v in rounds.values())

    def med(load, variant, key):
        return median([r.get(key) for r in rounds.get((load, variant), [])])

    def paired(load, other, value, variant="broker"):
        """Median over rounds of value(variant's run, other run) for runs of the same round."""
        others = {r.get("round", 1): r for r in rounds.get((load, other), [])}
        return median([value(b, others[b.get("round", 1)])
                       for b in rounds.get((load, variant), []) if b.get("round", 1) in others])

    out.append(f"Each figure is the median of {count} round(s); within a round the variants take turns.")
    out.append("")
    out.append("| load | variant | p50 ms | p99 ms | p99.9 ms | throughput req/s | non-200 (all rounds) | proxy CPU s | req per proxy CPU-s |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for load in loads:
        for v in variants:
            if (load, v) not in rounds:
                continue
            cpu = med(load, v, "cpu_seconds") or 0
            errors = sum(r.get("errors", 0) for r in rounds[(load, v)])
            per = median([per_cpu(r) for r in rounds[(load, v)]])
            per_text = f"{per:,.0f}" if per and v != "direct" else "—"
            cpu_text = f"{cpu:.2f}" if v != "direct" else f"{cpu:.2f} (upstream)"
            out.append(
                f"| {load} | {v} | {ms(med(load, v, 'p50_us'))} | {ms(med(load, v, 'p99_us'))} "
                f"| {ms(med(load, v, 'p999_us'))} | {med(load, v, 'rps'):,.0f} | {errors} | {cpu_text} | {per_text} |"
            )
    out.append("")
    out.append("Ratios (broker / other), taken within each round, median over the rounds:")
    out.append("")
    others = ["direct", "haproxy", "nginx"] + (["baseline"] if "baseline" in variants else [])
    names = {"direct": "direct", "haproxy": "HAProxy", "nginx": "nginx", "baseline": "baseline"}
    out.append(f"| load | metric | {' | '.join(f'broker/{names[o]}' for o in others)} | broker − direct (added) |")
    out.append(f"| --- | --- | {' | '.join('---:' for _ in others)} | ---: |")
    for load in loads:
        if (load, "broker") not in rounds:
            continue
        for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"), ("rps", "throughput")):
            cells = []
            for other in others:
                ratio = paired(load, other, lambda b, o: b[key] / o[key] if o[key] else None)
                cells.append(f"{ratio:.2f}" if ratio is not None else "—")
            added = paired(load, "direct", lambda b, o: b[key] - o[key])
            added_text = f"{added / 1000:+.3f} ms" if added is not None and key != "rps" else "—"
            out.append(f"| {load} | {name} | {' | '.join(cells)} | {added_text} |")
    out.append("")
    targets = []
    added = paired("1000/s", "direct", lambda b, o: b["p99_us"] - o["p99_us"])
    if added is not None:
        all_added = sorted((b["p99_us"] - o["p99_us"]) / 1000 for b, o in zip(
            sorted(rounds[("1000/s", "broker")], key=lambda r: r.get("round", 1)),
            sorted(rounds[("1000/s", "direct")], key=lambda r: r.get("round", 1))))
        peers = []
        for other in ("haproxy", "nginx"):
            peer = paired("1000/s", "direct", lambda b, o: b["p99_us"] - o["p99_us"], variant=other)
            if peer is not None:
                peers.append(f"{names[other]} {peer / 1000:.3f} ms")
        peers_text = f"; the same rounds through {', '.join(peers)}" if peers else ""
        targets.append(("Broker p99 added latency at 1,000 req/s < 0.5 ms",
                        f"{added / 1000:.3f} ms, median of {count} (each round: "
                        f"{', '.join(f'{a:.3f}' for a in all_added)} ms){peers_text}",
                        added / 1000 < 0.5))
    tls_load = next((load for load in loads if load.endswith(" https")), None)
    if tls_load:
        targets += tls_targets(tls_load, rounds, paired, count)
    rps_ratio = paired("max", "haproxy", lambda b, o: b["rps"] / o["rps"] if o["rps"] else None)
    cpu_ratio = paired("max", "haproxy", lambda b, o: (per_cpu(b) or 0) / per_cpu(o) if per_cpu(o) else None)
    if rps_ratio is not None:
        targets.append(("Broker throughput per core ≥ HAProxy's (same checks)",
                        f"closed loop on one core: broker {med('max', 'broker', 'rps'):,.0f} req/s vs HAProxy "
                        f"{med('max', 'haproxy', 'rps'):,.0f} req/s (median of per-round ratios {rps_ratio:.2f}); "
                        f"per CPU-second ratio {cpu_ratio:.2f}",
                        rps_ratio >= 1.0))
    if memory:
        hwm_mib = memory["hwm_kib"] / 1024
        under_load = med("max", "broker", "rss_kib") or 0
        out.append(
            f"Broker memory (release build): VmRSS idle {memory['rss_idle_kib'] / 1024:.1f} MiB, "
            f"under load (mid closed-loop run) {under_load / 1024:.1f} MiB, "
            f"VmHWM after all runs {hwm_mib:.1f} MiB; {memory['audit_lines']:,} audit lines written."
        )
        out.append("")
        targets.append(("Broker resident set < 20 MiB", f"VmHWM {hwm_mib:.1f} MiB", hwm_mib < 20))
    if idle:
        lines, idle_targets = idle_section(idle)
        out += lines
        targets += idle_targets
    return out, targets


def tls_targets(load, rounds, paired, count):
    """The broker's added p99 with an https chat API against HAProxy's doing TLS to the
    same upstream: the ratio of the two added p99s within each round, median over rounds."""
    def added(run, direct):
        return run["p99_us"] - direct["p99_us"]

    broker_added = paired(load, "direct", added)
    haproxy_added = paired(load, "direct", added, variant="haproxy")
    if broker_added is None or haproxy_added is None:
        return []
    directs = {r.get("round", 1): r for r in rounds.get((load, "direct"), [])}
    proxies = {r.get("round", 1): r for r in rounds.get((load, "haproxy"), [])}
    ratios = []
    for b in sorted(rounds.get((load, "broker"), []), key=lambda r: r.get("round", 1)):
        d, h = directs.get(b.get("round", 1)), proxies.get(b.get("round", 1))
        if d and h and added(h, d) > 0:
            ratios.append(added(b, d) / added(h, d))
    ratio = median(ratios)
    if ratio is None:
        return [("Broker p99 added with an https chat API ≤ 1.0× HAProxy's (TLS to the same upstream)",
                 "HAProxy added no p99 in any round; no ratio", False)]
    return [("Broker p99 added with an https chat API ≤ 1.0× HAProxy's (TLS to the same upstream), "
             f"{load.split()[0]}",
             f"median of per-round ratios {ratio:.2f}× (rounds: {', '.join(f'{r:.2f}' for r in ratios)}); "
             f"added p99 broker {broker_added / 1000:.3f} ms, HAProxy {haproxy_added / 1000:.3f} ms, "
             f"median of {count}",
             ratio <= 1.0)]


def idle_section(idle):
    """Idle keep-alive plugin connections held open: the broker's VmRSS before and with
    them, the cost per connection, against the container's memory limit."""
    out = ["Idle keep-alive plugin connections, each after one completed request, held open "
           "(VmRSS of the broker while they are held, 2 s after the last one opened):", "",
           "| chat API | broker flags | served / opened | ESTABLISHED plugin side / to chat API | "
           "VmRSS before MiB | VmRSS with them MiB | per connection KiB | still open after | "
           "container limit MiB |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    targets = []
    for r in idle:
        served = r["completed"]
        per = (r["rss_with_kib"] - r["rss_before_kib"]) / served if served else None
        flags = (f"`--max-outbound-connections {r['max_outbound_connections']} "
                 f"--header-read-timeout {r['header_read_timeout_s']}s`"
                 + (" (defaults)" if r["variant"] == "broker-idle-default" else ""))
        out.append(
            f"| {r['chat_api']} | {flags} | {served:,} / {r['opened']:,} of {r['requested']:,} "
            f"| {r['established_plugin_side']:,} / {r['established_upstream_side']:,} "
            f"| {r['rss_before_kib'] / 1024:.1f} | {r['rss_with_kib'] / 1024:.1f} "
            f"| {'—' if per is None else f'{per:.1f}'} | {r['still_open']:,} after "
            f"{r['still_open_after_seconds']} s | {r['limit_kib'] / 1024:.0f} |")
        if r["variant"] == "broker-idle":
            all_open = served == r["requested"] and r["established_upstream_side"] >= served
            with_mib, limit_mib = r["rss_with_kib"] / 1024, r["limit_kib"] / 1024
            targets.append((
                f"Broker memory with {r['requested']:,} idle keep-alive plugin connections "
                f"< its container limit ({limit_mib:.0f} MiB), chat API {r['chat_api']}",
                f"VmRSS {with_mib:.1f} MiB with {served:,} held (before {r['rss_before_kib'] / 1024:.1f} MiB), "
                f"{'—' if per is None else f'{per:.1f}'} KiB per connection (its connection to the chat API "
                f"included); cap raised to {r['max_outbound_connections']:,}"
                + ("" if all_open else "; not all connections were open"),
                all_open and with_mib < limit_mib))
    out.append("")
    return out, targets


# The operator's targets by size: (convergence ratio, VmHWM MiB). The 1,000-Plugin
# convergence target holds with the kube-controller-manager's client limit raised to
# 100 requests/s, burst 200, so the deployment controller reports the Deployments (and
# the Plugins become Ready) while the clock runs.
CONVERGENCE_LIMIT = {"qps": 100, "burst": 200}


def operator_targets(n):
    if n >= 10000:
        return 1.5, 128
    return 1.3, 64


def limit_text(limit):
    if not limit:
        return "not found (no kube-controller-manager on this machine)"
    return f"qps {limit['qps']:g}, burst {limit['burst']:g}"


def operator_section(ops, floors):
    """Convergence: the operator/floor ratio of each round (floor then operator), median
    over rounds. Memory and steady state: the last round, the one with the quiet window."""
    out, targets = [], []
    if not ops and not floors:
        return out, targets
    op = ops[-1] if ops else None
    n = (op or floors[-1])["plugins"]
    pairs = [(o.get("converge_seconds"), f.get("converge_seconds")) for o, f in zip(ops, floors)]
    ratios = [o / f for o, f in pairs if o and f]
    o_med = median([o for o, _ in pairs])
    f_med = median([f for _, f in pairs])
    ratio = median(ratios)
    limits = [x.get("controller_manager_client_limit") for x in ops + floors]
    limit = limits[0] if limits and all(x == limits[0] for x in limits) else None
    out.append(f"Convergence: {len(pairs)} round(s), each the floor then the operator; medians. "
               f"kube-controller-manager client limit in force: "
               f"{limit_text(limit) if limit or not limits else 'changed during the run'}.")
    out.append("")
    out.append("| measure | operator | floor | operator/floor |")
    out.append("| --- | ---: | ---: | ---: |")
    fmt = lambda v, spec=".1f": "—" if v is None else format(v, spec)
    out.append(f"| {n} Plugins created → all children + Ready at generation (s) | "
               f"{fmt(o_med)} | {fmt(f_med)} | {fmt(ratio, '.2f')} |")
    for index, (o, f) in enumerate(pairs, 1):
        out.append(f"| round {index} (s) | {fmt(o)} | {fmt(f)} | {fmt(o / f if o and f else None, '.2f')} |")
    api_o = median([x.get("apiserver_cpu_seconds") for x in ops])
    api_f = median([x.get("apiserver_cpu_seconds") for x in floors])
    out.append(f"| API server CPU seconds until converged | {fmt(api_o)} | {fmt(api_f)} | "
               f"{fmt(api_o / api_f if api_o and api_f else None, '.2f')} |")
    if op:
        out.append(f"| operator CPU seconds until converged | {fmt(median([x.get('operator_cpu_seconds') for x in ops]))} | | |")
        out.append(f"| of which creating the Plugins (s) | {op['create_seconds']:.1f} | | |")
        by_kind = op.get("writes_by_kind_at_convergence") or {}
        kinds = ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_kind.items()))
        out.append(f"| operator writes at convergence (last round) | {kinds or '—'} | {n} creates, {5 * n} applies, {2 * n} status | |")
        out.append(f"| operator VmRSS idle, before any Plugin (MiB) | {op['rss_idle_kib'] / 1024:.1f} | | |")
        out.append(f"| operator VmHWM with {n} Plugins (MiB) | {op['hwm_kib'] / 1024:.1f} | | |")
        out.append(f"| steady state {op['steady_seconds']} s: operator's own write counter | {op['steady_operator_writes']:.0f} | | |")
        out.append(f"| steady state: objects of the namespace whose resourceVersion changed (any writer, incl. Deployment status by the deployment controller) | {op['steady_objects_changed_in_namespace']} | | |")
        out.append(f"| steady state: API server APPLY/PATCH/POST/PUT on plugin kinds, whole cluster | {op['steady_apiserver_writes_cluster_wide']} | | |")
        out.append(f"| steady state: reconciles meanwhile | {op['steady_reconciles']:.0f} | | |")
        restart = op.get("restart")
        if restart:
            settled = restart.get("settled_seconds")
            out.append(f"| a new operator process among the {n} Plugins: every one reconciled, then 3 s quiet (s) | {fmt(settled)} | | |")
            out.append(f"| of which children read (content digest new to the process) / writes | {restart['children_read']:.0f} / {restart['writes']:.0f} | | |")
            out.append(f"| the new process's VmHWM (MiB) | {restart['hwm_kib'] / 1024:.1f} | | |")
        out.append("")
        bound, memory_bound = operator_targets(n)
        if ratio is not None:
            measured = (f"median {o_med:.1f} s vs {f_med:.1f} s; median ratio {ratio:.2f}× "
                        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
            if n >= 10000:
                targets.append((f"{n:,} paused Plugins: convergence within {bound}× the floor",
                                measured, ratio <= bound))
            else:
                at_limit = bool(limit) and limit["qps"] >= CONVERGENCE_LIMIT["qps"] \
                    and limit["burst"] >= CONVERGENCE_LIMIT["burst"]
                targets.append((f"Convergence of {n:,} Plugins with kube-controller-manager "
                                f"--kube-api-qps={CONVERGENCE_LIMIT['qps']} --kube-api-burst={CONVERGENCE_LIMIT['burst']}, "
                                f"clock stopped at Ready, within {bound}× the floor",
                                f"{measured}; limit in force: {limit_text(limit)}",
                                ratio <= bound if at_limit else None))
        hwm = op["hwm_kib"] / 1024
        targets.append((f"Operator < {memory_bound} MiB resident at {n:,} Plugins", f"VmHWM {hwm:.1f} MiB",
                        hwm < memory_bound))
        if restart:
            restart_hwm = restart["hwm_kib"] / 1024
            targets.append((f"Operator < {memory_bound} MiB resident when it restarts among {n:,} Plugins",
                            f"VmHWM {restart_hwm:.1f} MiB; {restart['writes']:.0f} writes",
                            restart_hwm < memory_bound and restart["writes"] == 0))
        targets.append((f"No writes in steady state ({n:,} Plugins, {op['steady_seconds']} s)",
                        f"operator counter {op['steady_operator_writes']:.0f}, namespace objects changed "
                        f"{op['steady_objects_changed_in_namespace']} (API server, whole shared cluster: "
                        f"{op['steady_apiserver_writes_cluster_wide']})",
                        # The target is the operator's writes: its own counter and the API
                        # server's count (which leaves out Deployment status, written by the
                        # deployment controller). Objects changed in the namespace include
                        # that status, so they are reported, not judged.
                        op["steady_operator_writes"] == 0 and op["steady_apiserver_writes_cluster_wide"] == 0))
    return out, targets


def drift_section(drift):
    """The drift benchmark: one row of figures and the target of issue 16."""
    if not drift:
        return [], []
    samples = ", ".join(f"{v:.0f}" for v in drift["samples_ms"])
    lines = [
        f"A NetworkPolicy opened by hand (ingress and egress `[{{}}]`) {drift['edits']} times; "
        "from just before the patch until a read shows it as the operator wrote it.",
        "",
        "| edits | p50 ms | p99 ms (nearest rank) | max ms | corrections counted |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {drift['edits']} | {drift['p50_ms']:.0f} | {drift['p99_ms']:.0f} | {drift['max_ms']:.0f} "
        f"| {drift['corrections']:.0f} |",
        "",
        f"Samples (ms): {samples}.",
        "",
    ]
    target = (f"Drift put back (NetworkPolicy opened by hand) p99 over {drift['edits']} edits < 2 s",
              f"{drift['p99_ms'] / 1000:.2f} s (p50 {drift['p50_ms'] / 1000:.2f} s)",
              drift["p99_ms"] < 2000)
    return lines, [target]


def ready_section(ready):
    """Apply → Ready with real pods: the operator against bare Deployments of the same pod."""
    if not ready:
        return [], []
    at_once, one = ready["at_once"], ready["one"]
    n = ready["plugins"]
    fmt = lambda v, spec=".0f": "—" if v is None else format(v, spec)

    def row(what, result, end_key):
        return (f"| {what} | {fmt(result.get('p50_ms'))} | {fmt(result.get('p99_ms'))} "
                f"| {fmt(result.get('median_deployment_seen_ms'))} | {fmt(result.get('median_pod_ready_ms'))} "
                f"| {fmt(result.get('median_deployment_available_ms'))} | {fmt(result.get(end_key))} "
                f"| {result.get('missing', 0)} |")

    lines = [
        f"{n} at once, {ready['rounds']} round(s), each the floor ({n} Deployments of the operator's pod "
        f"template, written directly) then the operator ({n} Plugins); then {one['tries']} single tries, "
        "each a floor Deployment then one Plugin. Milliseconds from just before the first write; "
        "milestones are medians, from watches.",
        "",
        "| run | p50 | p99 (nearest rank) | Deployment exists | pod Ready | Deployment Available | Plugin Ready | not done |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in at_once["rounds"]:
        lines.append(row(f"{n} at once, round {r['round']}, {r['side']}", r["result"], "median_plugin_ready_ms"))
    lines.append(row(f"{n} at once, all rounds, floor", at_once["floor"], "median_plugin_ready_ms"))
    lines.append(row(f"{n} at once, all rounds, operator", at_once["operator"], "median_plugin_ready_ms"))
    lines.append(row(f"one at a time ({one['tries']} tries), floor", one["floor"], "median_plugin_ready_ms"))
    lines.append(row(f"one at a time ({one['tries']} tries), operator", one["operator"], "median_plugin_ready_ms"))
    lines.append("")
    r50, r99 = at_once.get("ratio_p50"), at_once.get("ratio_p99")
    by_round = {}
    for r in at_once["rounds"]:
        by_round.setdefault(r["round"], {})[r["side"]] = r["result"].get("p50_ms")
    per_round = [o / f for o, f in ((r.get("operator"), r.get("floor")) for r in by_round.values()) if o and f]
    lines.append(f"Operator/floor at {n} at once: p50 {fmt(r50, '.2f')}×, p99 {fmt(r99, '.2f')}×; "
                 f"absolute p99 {fmt(at_once['operator'].get('p99_ms'))} ms (floor {fmt(at_once['floor'].get('p99_ms'))} ms); "
                 f"p50 ratio per round: {', '.join(f'{x:.2f}×' for x in per_round) or '—'}.")
    lines.append("")
    samples = ", ".join(f"{v:.0f}" for v in one["operator"].get("samples_ms", []))
    lines.append(f"One Plugin, samples (ms): {samples}.")
    lines.append("")
    targets = []
    if r50 is not None and r99 is not None:
        targets.append((f"Apply → Ready, {n} Plugins at once with real pods, p50 / p99 ≤ 1.25× the floor",
                        f"p50 {r50:.2f}×, p99 {r99:.2f}× ({fmt(at_once['operator']['p50_ms'])} / "
                        f"{fmt(at_once['operator']['p99_ms'])} ms vs {fmt(at_once['floor']['p50_ms'])} / "
                        f"{fmt(at_once['floor']['p99_ms'])} ms); absolute p99 {at_once['operator']['p99_ms'] / 1000:.2f} s",
                        r50 <= 1.25 and r99 <= 1.25 and not at_once["operator"].get("missing")))
    p99 = one["operator"].get("p99_ms")
    if p99 is not None:
        targets.append((f"Apply → Ready, one Plugin on a quiet cluster, p99 over {one['tries']} tries < 3 s",
                        f"{p99 / 1000:.2f} s (p50 {one['operator']['p50_ms'] / 1000:.2f} s; "
                        f"floor p99 {fmt(one['floor'].get('p99_ms'))} ms)",
                        p99 < 3000 and not one["operator"].get("missing")))
    return lines, targets


def load_rounds(results, name):
    """name-1.json, name-2.json, ... in round order, or name.json alone."""
    rounds = sorted((f for f in os.listdir(results) if f.startswith(f"{name}-") and f.endswith(".json")),
                    key=lambda f: int(f[len(name) + 1:-5]))
    paths = [os.path.join(results, f) for f in rounds] or [os.path.join(results, f"{name}.json")]
    return [row for row in (load_json(p) for p in paths) if row]


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
    lines = []
    broker, t1 = broker_section(load_lines(os.path.join(results, "broker.jsonl")))
    if broker:
        lines += ["### Broker", ""] + broker
    t2 = []
    for sizes in sorted((d for d in os.listdir(results) if d.startswith("plugins-")),
                        key=lambda d: int(d[len("plugins-"):])):
        directory = os.path.join(results, sizes)
        operator, targets = operator_section(load_rounds(directory, "operator"), load_rounds(directory, "floor"))
        if operator:
            lines += [f"### Operator, {int(sizes[len('plugins-'):]):,} Plugins", ""] + operator
            t2 += targets
    drift, t3 = drift_section(load_json(os.path.join(results, "drift.json")))
    if drift:
        lines += ["### Drift put back", ""] + drift
    ready, t4 = ready_section(load_json(os.path.join(results, "ready.json")))
    if ready:
        lines += ["### Apply → Ready with real pods", ""] + ready
    targets = t1 + t2 + t3 + t4
    if targets:
        lines += ["### Targets", "", "| target | measured | verdict |", "| --- | --- | --- |"]
        lines += [f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in targets]
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
