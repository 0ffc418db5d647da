"""Results as tables: plain text for the terminal, Markdown for docs/PERFORMANCE.md."""

from collections.abc import Callable
from typing import Any

Table = tuple[str, list[str], list[list[str]]]  # title, header, rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def _cpus(values: list[float]) -> str:
    return " + ".join(_pct(v) for v in values)


def _others(core_busy: list[float], server_cpu: list[float], generator_cpu: float) -> str:
    """CPU share of core 0 / core 1 used by anything but the servers / the generator."""
    server_core, generator_core = core_busy
    return (
        f"{_pct(max(0.0, server_core - sum(server_cpu)))} / "
        f"{_pct(max(0.0, generator_core - generator_cpu))}"
    )


def _gen(value: float, bound: bool) -> str:
    return _pct(value) + (" (generator-bound)" if bound else "")


def _errors(result: dict[str, Any]) -> str:
    return f"error: {result['error']}"


def fanout_tables(name: str, data: dict[str, Any]) -> list[Table]:
    header = [
        "server",
        "fast rate (msg/s)",
        "deliveries/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "server CPU",
        "generator CPU",
        "max sustained (msg/s)",
        "deliveries/s",
        "p99 ms",
        "server CPU",
        "stopped at",
        "setup s",
    ]
    summary, tables = [], []
    for target, result in data["targets"].items():
        if "error" in result:
            summary.append([target, _errors(result), *[""] * (len(header) - 2)])
            continue
        last = result["steps"][-1]
        stopped = "-" if last.get("sustained") else f"{last['rate']:g}/s: {last['verdict']}"
        summary.append(
            [
                target,
                *_fast(result["best"]),
                *_sustained(result["sustained"]),
                stopped,
                str(result["setup_s"]),
            ]
        )
        tables.append(_steps_table(f"{name}: {target}, every step", result["steps"]))
    title = (
        f"{name}: {data['members']} members, one sends; {data['step_seconds']:g} s per step; "
        "fast = p99 < 100 ms and nothing lost, sustained = nothing lost and no backlog"
    )
    return [(title, header, summary), *tables]


def _fast(step: dict[str, Any] | None) -> list[str]:
    if step is None:
        return ["none", *[""] * 6]
    group = step["groups"]["all"]
    return [
        f"{step['rate']:g}",
        f"{step['deliveries_per_s']:,}",
        _ms(group["p50"]),
        _ms(group["p95"]),
        _ms(group["p99"]),
        _cpus(step["server_cpu"]),
        _gen(step["generator_cpu"], step["generator_bound"]),
    ]


def _sustained(step: dict[str, Any] | None) -> list[str]:
    if step is None:
        return ["none", "", "", ""]
    return [
        f"{step['rate']:g}",
        f"{step['deliveries_per_s']:,}",
        _ms(step["groups"]["all"]["p99"]),
        _cpus(step["server_cpu"]),
    ]


def _steps_table(title: str, steps: list[dict[str, Any]]) -> Table:
    header = [
        "rate",
        "sent at",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "server CPU",
        "others on core 0 / 1",
        "generator CPU",
        "verdict",
    ]
    rows = []
    for step in steps:
        if "groups" not in step:
            rows.append([f"{step['rate']:g}", *[""] * 9, step["verdict"]])
            continue
        group = step["groups"]["all"]
        rows.append(
            [
                f"{step['rate']:g}",
                f"{step['achieved_rate']:g}",
                f"{step['deliveries_per_s']:,}",
                _ms(group["p50"]),
                _ms(group["p99"]),
                _ms(group["max"]),
                str(group["lost"]),
                _cpus(step["server_cpu"]),
                _others(step["core_busy"], step["server_cpu"], step["generator_cpu"]),
                _gen(step["generator_cpu"], step["generator_bound"]),
                step["verdict"],
            ]
        )
    return title, header, rows


def idle_tables(name: str, data: dict[str, Any]) -> list[Table]:
    header = [
        "server",
        "sockets (open at end)",
        "connects/s",
        "server CPU ms per connect",
        "RSS before MB",
        "RSS after MB",
        "KiB per socket",
        "idle CPU",
        "generator CPU (setup)",
    ]
    rows = []
    for target, r in data["targets"].items():
        if "error" in r:
            rows.append([target, _errors(r), *[""] * 7])
            continue
        rows.append(
            [
                target,
                f"{r['sockets']:,} ({r['still_open']:,})",
                f"{r['connects_per_s']:,}",
                f"{r['server_ms_per_connect']:.1f}",
                f"{r['rss_before_mb']:.0f}",
                f"{r['rss_after_mb']:.0f}",
                f"{r['kib_per_socket']:.1f}",
                _pct(r["idle_cpu"]),
                _gen(r["generator_cpu_setup"], r["generator_bound"]),
            ]
        )
    title = f"{name}: idle sockets, authenticated and joined, rooms of {data['room_size']}"
    return [(title, header, rows)]


def write_tables(name: str, r: dict[str, Any]) -> list[Table]:
    if "error" in r:
        return [(name, ["result"], [[_errors(r)]])]
    header = [
        "senders",
        "acked msg/s",
        "ack p50 ms",
        "ack p95 ms",
        "ack p99 ms",
        "ack max ms",
        "errors",
        "unanswered",
        "deliveries/s",
        "server CPU",
        "others on core 0 / 1",
        "generator CPU",
    ]
    rows = [
        [
            phase,
            f"{p['acked_per_s']:,}",
            _ms(p["ack_p50"]),
            _ms(p["ack_p95"]),
            _ms(p["ack_p99"]),
            _ms(p["ack_max"]),
            ", ".join(f"{k}: {v}" for k, v in p["errors"].items()) or "0",
            str(p["unanswered"]),
            f"{p['deliveries_per_s']:,}",
            _pct(p["server_cpu"]),
            _others(p["core_busy"], [p["server_cpu"]], p["generator_cpu"]),
            _gen(p["generator_cpu"], p["generator_bound"]),
        ]
        for phase, p in r["phases"].items()
    ]
    db = r["database"]
    stream = (
        f"stream gap-free: {'yes' if db['gap_free'] else 'NO'} ({db['messages']} messages, "
        f"room position {db['room_pos']}, {db['duplicates']} duplicated, {db['missing']} missing, "
        f"{'equal to' if db['matches_acks'] else 'NOT equal to'} the acks)"
    )
    title = (
        f"{name}: {r['senders']} senders x {r['window']} in flight into one room on PostgreSQL, "
        f"{r['seconds']:g} s per phase; {stream}"
    )
    return [(title, header, rows)]


def redis2_tables(name: str, r: dict[str, Any]) -> list[Table]:
    if "error" in r:
        return [(name, ["result"], [[_errors(r)]])]
    header = ["receivers on", "members", "received", "lost", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    rows = [
        [
            group_name,
            str(g["members"]),
            f"{g['received']:,}",
            str(g["lost"]),
            _ms(g["p50"]),
            _ms(g["p95"]),
            _ms(g["p99"]),
            _ms(g["max"]),
        ]
        for group_name, g in r["groups"].items()
    ]
    title = (
        f"{name}: two processes over Redis ({r['servers']}), sender on A at "
        f"{r['rate']:g} msg/s (sent {r['sent']}, acked {r['acks']}); "
        f"server CPU A + B {_cpus(r['server_cpu'])}, others on core 0 / 1 "
        f"{_others(r['core_busy'], r['server_cpu'], r['generator_cpu'])}; "
        f"verdict: {r['verdict']}"
    )
    return [(title, header, rows)]


def socketio_tables(name: str, r: dict[str, Any]) -> list[Table]:
    found: list[Table] = []
    f = r["fanout"]
    if "error" in f:
        found.append((f"{name}: fan-out", ["result"], [[_errors(f)]]))
    else:
        header = ["clients", "members", "received", "lost", "p50 ms", "p95 ms", "p99 ms", "max ms"]
        rows = [
            [
                kind,
                str(g["members"]),
                f"{g['received']:,} of {g['members'] * f['sent']:,}",
                str(g["lost"]),
                _ms(g["p50"]),
                _ms(g["p95"]),
                _ms(g["p99"]),
                _ms(g["max"]),
            ]
            for kind, g in f["groups"].items()
        ]
        title = (
            f"{name}: native and Socket.IO ({f['transport']}) members in one room, a native "
            f"sender at {f['rate']:g} msg/s (sent {f['sent']}, acked {f['acks']}); server CPU "
            f"{_cpus(f['server_cpu'])}, "
            f"generator {_gen(f['generator_cpu'], f['generator_bound'])}; "
            f"verdict: {f['verdict']}"
        )
        found.append((title, header, rows))
    i = r["idle"]
    if "error" in i:
        found.append((f"{name}: idle", ["result"], [[_errors(i)]]))
    else:
        header = ["clients", "idle connections", "open at end", "RSS growth MB", "KiB each"]
        rows = [
            [
                kind,
                str(k["connections"]),
                k["open_at_end"],
                f"{k['rss_growth_mb']:.1f}",
                f"{k['kib_per_connection']:.1f}",
            ]
            for kind, k in i["kinds"].items()
        ]
        title = (
            f"{name}: server memory per idle connection ({i['order']}; "
            f"RSS before {i['rss_before_mb']:.1f} MB)"
        )
        found.append((title, header, rows))
    return found


def reconnect_tables(name: str, r: dict[str, Any]) -> list[Table]:
    """The reconnect storm (bench/scenario_reconnect.py)."""
    rows = [
        [
            "sockets (rooms each, room size)",
            f"{r['sockets']} ({r['rooms_per_socket']}, {r['room_size']})",
        ],
        [
            "first connect: wall s, server ms/socket",
            f"{r['first_connect_s']}, {r['first_connect_server_ms_per_socket']}",
        ],
        ["closed by the drain with 1012", str(r["closed_with_1012"])],
        ["all back on B within (s)", str(r["recovered_s"])],
        ["server CPU on B per socket (ms)", str(r["storm_server_ms_per_socket"])],
        ["posted during the storm", str(r["posted_during_storm"])],
        [
            "rooms behind at the end, gaps, duplicates",
            f"{r['rooms_behind_at_end']}, {r['gaps']}, {r['duplicates']}",
        ],
    ]
    return [(f"{name}: a drain's 1012 storm, reconnected to a second process", ["", "value"], rows)]


RENDERERS: dict[str, Callable[[str, dict[str, Any]], list[Table]]] = {
    "fanout100": fanout_tables,
    "fanout1000": fanout_tables,
    "idle": idle_tables,
    "write": write_tables,
    "redis2": redis2_tables,
    "socketio": socketio_tables,
    "reconnect": reconnect_tables,
}


def tables(name: str, data: dict[str, Any]) -> list[Table]:
    if "error" in data:
        return [(name, ["result"], [[_errors(data)]])]
    return RENDERERS[name](name, data)


def as_text(table: Table) -> str:
    title, header, rows = table
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def as_markdown(table: Table) -> str:
    title, header, rows = table
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def log_warnings(results: dict[str, Any]) -> list[str]:
    """One line per server log that had anything in it (the servers log at warning)."""
    found = []

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key != "server_log":
                walk(value)
                continue
            for server, log in value.items():
                for phase in ("measuring", "teardown"):
                    events = {k: n for k, n in log[phase].items() if IGNORED not in k}
                    if events:
                        top = ", ".join(f"{k} x{n}" for k, n in list(events.items())[:4])
                        found.append(f"{server} ({phase}): {top}  [{log['log']}]")

    walk(results)
    return found


# Emitted at every start in development settings (whitenoise, no collectstatic): noise here.
IGNORED = "UserWarning: No directory at"
