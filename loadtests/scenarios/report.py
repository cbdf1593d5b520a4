"""After a scenario: wait for the worker to drain, verify the books, and write the report (client
figures from Locust's CSV files, server figures from /metrics before and after, timings from
Postgres) with a chart of the run."""

from __future__ import annotations

import asyncio
import csv
import math
import os
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import redis.asyncio as redis
from prometheus_client.parser import text_string_to_metric_families

from engine.db import create_pool
from engine.inventory import Inventory
from engine.keys import Keys
from loadtests.verify import LIVE, seats_sold_twice, verify

DRAIN_SECONDS = 180


async def drain_and_verify(stack, config: dict, plan: dict) -> tuple[list[str], float]:
    """The verifier's problems once they stop changing: it is run until it passes or
    DRAIN_SECONDS have gone (the worker may still be issuing tickets and sending email)."""
    client = redis.Redis.from_url(stack.redis_url)
    inventory = Inventory(client, Keys(stack.prefix), 900)
    pool = await create_pool(stack.database_url, 1, 2)
    t0 = time.monotonic()
    try:
        if config.get("baseline"):
            return await baseline_books(pool), 0.0
        while True:
            problems = await verify(inventory, pool, config["event_ids"])
            if not problems or time.monotonic() - t0 > DRAIN_SECONDS:
                return problems, time.monotonic() - t0
            await asyncio.sleep(1)
    finally:
        await inventory.close()
        await pool.close()
        await client.aclose()


async def baseline_books(pool) -> list[str]:
    """The row-lock baseline's own books: nothing held beyond a row's capacity."""
    rows = await pool.fetch(
        "SELECT s.id, s.capacity, s.remaining, coalesce(sum(h.qty), 0) AS held FROM bench_stock s "
        "LEFT JOIN bench_holds h ON h.stock_id = s.id GROUP BY s.id ORDER BY s.id")
    return [f"baseline package {r['id']}: held {r['held']} + remaining {r['remaining']} != "
            f"capacity {r['capacity']}" for r in rows
            if r["held"] + r["remaining"] != r["capacity"] or r["remaining"] < 0]


# -- /metrics ----------------------------------------------------------------------------------

def _samples(text: str) -> dict[tuple, float]:
    out: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def server_figures(before: str, after: str) -> dict:
    """Counter increases over the run, gauges at its end, latency quantiles per route."""
    a, b = _samples(before), _samples(after)

    def delta(name: str, **match) -> dict[tuple, float]:
        got = {}
        for (n, labels), v in b.items():
            if n != name or any(dict(labels).get(k) != w for k, w in match.items()):
                continue
            got[labels] = v - a.get((n, labels), 0.0)
        return got

    holds = defaultdict(float)
    for labels, v in delta("kwika_holds_total").items():
        d = dict(labels)
        holds["made" if d.get("outcome") == "made" else f"refused: {d.get('reason')}"] += v
    payments = {dict(k).get("state"): v for k, v in delta("kwika_payments_total").items() if v}
    scans = {dict(k).get("result"): v for k, v in delta("kwika_scans_total").items() if v}
    purchases = sum(delta("kwika_purchases_confirmed_total").values())
    admitted = sum(delta("kwika_room_admitted_total").values())
    statuses = defaultdict(float)
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for labels, v in delta("kwika_http_request_duration_seconds_bucket").items():
        d = dict(labels)
        route = f"{d['method']} {d['route']}"
        buckets[route][float(d["le"])] += v
        if d["le"] == "+Inf":
            statuses[d["status"][0] + "xx"] += v
    routes = {}
    for route, by_le in buckets.items():
        count = by_le.get(math.inf, 0)
        if count:
            routes[route] = {"count": count, **{q: _quantile(by_le, q) for q in (0.5, 0.95, 0.99)}}
    gauges = {}
    for (n, labels), v in b.items():
        if n in ("kwika_stream_pending", "kwika_stream_undelivered", "kwika_dead_letters"):
            gauges[f"{n}{dict(labels)}"] = v
    return {"holds": dict(holds), "payments": payments, "scans": scans, "purchases": purchases,
            "admitted": admitted, "statuses": dict(statuses), "routes": routes, "gauges": gauges}


def _quantile(by_le: dict[float, float], q: float) -> float:
    """histogram_quantile: linear within the bucket the q-th observation falls in (ms)."""
    edges = sorted(by_le)
    total = by_le[math.inf]
    rank, prev_edge, prev_count = q * total, 0.0, 0.0
    for edge in edges:
        count = by_le[edge]
        if count >= rank:
            if edge == math.inf:
                return prev_edge * 1000
            span = count - prev_count
            frac = (rank - prev_count) / span if span else 1.0
            return (prev_edge + (edge - prev_edge) * frac) * 1000
        prev_edge, prev_count = edge, count
    return float("nan")


# -- Locust's CSV ------------------------------------------------------------------------------

def client_rows(out: Path) -> list[dict]:
    with open(out / "locust_stats.csv", newline="") as f:
        return list(csv.DictReader(f))


def exceptions(out: Path) -> Counter:
    """Errors raised in the users' own code: a broken load script is a failed run, not a quiet
    one."""
    found: Counter = Counter()
    path = out / "locust_exceptions.csv"
    if path.exists():
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                found[r["Message"]] += int(r["Count"])
    return found


def history(out: Path) -> list[dict]:
    path = out / "locust_stats_history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]


def chart(rows: list[dict], title: str) -> str:
    """Throughput (requests/s, failures/s, users) above latency (p50, p95, p99) over the run, as
    an SVG image."""
    if len(rows) < 2:
        return ""
    t0 = int(rows[0]["Timestamp"])
    xs = [int(r["Timestamp"]) - t0 for r in rows]

    def col(name: str) -> list[float]:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[name]))
            except (ValueError, KeyError):
                vals.append(0.0)
        return vals

    w, h, pad = 760, 210, 48
    span = max(xs) or 1
    panels = [("requests/s", [("Requests/s", "#1565c0"), ("Failures/s", "#c62828")], "User Count"),
              ("latency ms (rolling)", [("50%", "#2e7d32"), ("95%", "#ef6c00"), ("99%", "#6a1b9a")],
               None)]
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{2 * h + 40}" '
             f'font-family="sans-serif" font-size="11">'),
             '<rect width="100%" height="100%" fill="#fff"/>',
             f'<text x="{pad}" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>']
    for i, (label, series, right) in enumerate(panels):
        top = 28 + i * h
        plot_h = h - 40
        top_val = max([max(col(n)) for n, _ in series] + [1.0])
        parts.append(f'<text x="{pad}" y="{top + 10}">{label} (max {top_val:,.0f})</text>')
        parts.append(f'<rect x="{pad}" y="{top + 16}" width="{w - 2 * pad}" height="{plot_h}" '
                     f'fill="none" stroke="#bbb"/>')
        for name, colour in series:
            pts = " ".join(f"{pad + (w - 2 * pad) * x / span:.1f},"
                           f"{top + 16 + plot_h - plot_h * v / top_val:.1f}"
                           for x, v in zip(xs, col(name), strict=True))
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                         f'stroke-width="1.5"/>')
        legend = [(n, c) for n, c in series] + ([(f"{right} (scaled)", "#999")] if right else [])
        if right:
            users = col(right)
            top_u = max(users + [1.0])
            pts = " ".join(f"{pad + (w - 2 * pad) * x / span:.1f},"
                           f"{top + 16 + plot_h - plot_h * v / top_u:.1f}"
                           for x, v in zip(xs, users, strict=True))
            parts.append(f'<polyline points="{pts}" fill="none" stroke="#999" '
                         f'stroke-dasharray="4 3"/>')
        for j, (name, colour) in enumerate(legend):
            x = w - pad - 130 * (len(legend) - j)
            parts.append(f'<rect x="{x}" y="{top + 3}" width="10" height="10" fill="{colour}"/>'
                         f'<text x="{x + 14}" y="{top + 12}">{_esc(name)}</text>')
        parts.append(f'<text x="{w - pad}" y="{top + plot_h + 30}" text-anchor="end">'
                     f'{span} s</text><text x="{pad}" y="{top + plot_h + 30}">0 s</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- Postgres timings --------------------------------------------------------------------------

async def inbox_times(database_url: str, event_ids: list[int], baseline: bool = False) -> dict:
    """Purchase to inbox: from the buyer pressing pay (the payment's creation) to the tickets
    email accepted by the SMTP server; and tickets per cohort (by billing email). The baseline:
    what its rows hold."""
    pool = await create_pool(database_url, 1, 2)
    if baseline:
        try:
            row = await pool.fetchrow(
                "SELECT (SELECT coalesce(sum(qty), 0) FROM bench_holds) AS sold, "
                "(SELECT coalesce(sum(capacity), 0) FROM bench_stock) AS capacity")
        finally:
            await pool.close()
        return {"inbox_ms": [], "cohorts": {}, "sold": row["sold"], "capacity": row["capacity"],
                "window": {}}
    try:
        rows = await pool.fetch(
            "SELECT extract(epoch FROM (l.sent_at - p.created_at)) * 1000 AS ms "
            "FROM payments p JOIN email_log l ON l.kind = 'tickets' AND l.dedupe_key = p.order_number "
            "WHERE p.event_id = ANY($1::bigint[]) AND p.state = 'succeeded' AND l.status = 'sent'",
            event_ids)
        cohorts = await pool.fetch(
            "SELECT split_part(o.email, '@', 1) AS cohort, count(t.id) AS tickets, "
            "count(DISTINCT o.id) AS orders FROM orders o JOIN tickets t ON t.order_id = o.id "
            "WHERE o.event_id = ANY($1::bigint[]) AND o.status = 'confirmed' GROUP BY 1",
            event_ids)
        sold = await pool.fetchval(
            "SELECT count(*) FROM tickets WHERE event_id = ANY($1::bigint[]) "
            "AND status IN ('valid', 'used')", event_ids)
        capacity = await pool.fetchval(
            "SELECT coalesce(sum(capacity), 0) FROM ticket_packages "
            "WHERE event_id = ANY($1::bigint[])", event_ids)
        window = await pool.fetchrow(
            "SELECT min(created_at) AS first, max(created_at) AS last, count(*) AS n "
            "FROM payments WHERE event_id = ANY($1::bigint[]) AND state = 'succeeded'", event_ids)
        checkins = await pool.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT ticket_number) AS tickets, min(at) AS first, "
            "max(at) AS last FROM checkins WHERE event_id = ANY($1::bigint[]) AND action = 'in'",
            event_ids)
    finally:
        await pool.close()
    ms = sorted(float(r["ms"]) for r in rows)
    return {"inbox_ms": ms, "cohorts": {r["cohort"]: (r["tickets"], r["orders"]) for r in cohorts},
            "sold": sold, "capacity": capacity, "window": dict(window) if window else {},
            "checkins": dict(checkins)}


async def seat_figures(database_url: str, event_ids: list[int]) -> dict:
    """Seated events: per section, its seats and how many have a live ticket; and the seats with
    more than one (the verifier's own check, seats_sold_twice)."""
    pool = await create_pool(database_url, 1, 2)
    try:
        sections = await pool.fetch(
            "SELECT c.name, c.capacity, count(DISTINCT t.seat_id) AS sold FROM sections c "
            "LEFT JOIN seats s ON s.section_id = c.id "
            "LEFT JOIN tickets t ON t.seat_id = s.id AND t.status = ANY($2::text[]) "
            "WHERE c.event_id = ANY($1::bigint[]) GROUP BY c.id ORDER BY c.sort_order, c.id",
            event_ids, list(LIVE))
        twice = [p for e in event_ids for p in await seats_sold_twice(pool, e)]
    finally:
        await pool.close()
    return {"sections": [dict(r) for r in sections], "twice": twice}


def pct(data: list[float], q: float) -> float:
    if not data:
        return float("nan")
    data = sorted(data)
    return data[min(len(data) - 1, int(q * len(data)))]


def spearman(pairs: list[tuple[float, float]]) -> float:
    """Rank correlation (ties get their average rank)."""
    if len(pairs) < 3:
        return float("nan")

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks([p[0] for p in pairs]), ranks([p[1] for p in pairs])
    n = len(pairs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx and vy else float("nan")


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def write_report(report_dir: Path, scenario, plan: dict, config: dict, stack, out: Path,
                 before: str, after: str, problems: list[str], drained: float,
                 started: datetime, ran: float, seen: dict, locust_code: int) -> bool:
    """Write `<scenario>-<users>.md` and its chart; True when the run passed."""
    rows = client_rows(out)
    server = server_figures(before, after)
    pg = asyncio.run(inbox_times(stack.database_url, config["event_ids"],
                                 baseline=bool(config.get("baseline"))))
    if config.get("seated"):
        pg["seating"] = asyncio.run(seat_figures(stack.database_url, config["event_ids"]))
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    failures = int(total["Failure Count"]) if total else 0
    script_errors = exceptions(out)
    name = f"{scenario.name}-{plan['users']}"
    svg = chart(history(out), f"{scenario.title}: {plan['users']} users")
    if svg:
        (report_dir / f"{name}.svg").write_text(svg)
    fivexx = server["statuses"].get("5xx", 0)
    lines = [f"# {scenario.title}: {plan['users']:,} users",
             "",
             (f"`python -m loadtests.run {scenario.name} --users {plan['users']}"
             f"{' --short' if plan['short'] else ''}` — {started:%Y-%m-%d %H:%M} UTC, "
             f"{os.cpu_count()} cores shared by `kwika up --workers {plan['workers']}` (its first "
             f"process also runs the fulfillment and email workers), Redis, PostgreSQL and Locust "
             f"(a master and {plan['processes']} workers); load average after: {_load()}."),
             "",
             f"Users arrive within {plan['spawn_seconds']:g} s; the load runs {plan['seconds']:g} s "
             f"({ran:.0f} s with start and stop). " + scenario_words(plan, config),
             "",
             "## Verdict",
             "",
             "| check | result |",
             "|---|---|",
             (f"| verifier (loadtests/verify.py, `kwika audit` included) | "
             f"{'passed' if not problems else f'**{len(problems)} problem(s)**'} "
             f"(drained after {drained:.0f} s) |"),
             f"| tickets sold / capacity | {pg['sold']:,} / {pg['capacity']:,} |",
             f"| requests failed (5xx, timeouts, wrong answers) | {failures:,} |",
             f"| server 5xx (from /metrics) | {fivexx:,.0f} |",
             f"| errors in the load script (Locust exceptions) | {sum(script_errors.values()):,} |"]
    for message, count in script_errors.most_common(5):
        lines.append(f"| script error ×{count:,} | {message[:200]} |")
    cpu = plan.get("server_cpu") or {}
    if cpu:
        lines.append("| CPU seconds used during the load, per process of `kwika up` | " + ", ".join(
            f"{name}: {sec:g}" for name, sec in sorted(cpu.items()) if sec >= 0.5) + f" (of "
            f"{ran:.0f} s) |")
    for p in problems[:20]:
        lines.append(f"| problem | {p} |")
    lines += extra_lines(plan, config, server, pg, seen, rows)
    wrong: list[str] = []
    if plan["scenario"] == "gate-rush":
        gate, wrong = gate_lines(plan, server, pg, seen, rows)
        lines += gate
    lines += ["", "## Client side (Locust)", "",
              "| request | count | failures | per s | p50 ms | p95 ms | p99 ms | max ms |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['Name']} | {int(r['Request Count']):,} | {int(r['Failure Count']):,} "
                     f"| {float(r['Requests/s']):,.1f} | {r['50%']} | {r['95%']} | {r['99%']} "
                     f"| {float(r['Max Response Time']):,.0f} |")
    answers = {k: v for k, v in seen["counts"].items()}
    if answers:
        lines += ["", "Answers and outcomes the users counted: " + ", ".join(
            f"{k} {v:,}" for k, v in sorted(answers.items()))]
    lines += ["", "## Server side (/metrics, the run's increase)", ""]
    if server["holds"]:
        lines.append("Holds: " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(server["holds"].items())))
    if server["payments"]:
        lines.append("Payments by state: " + ", ".join(
            f"{k} {v:,.0f}" for k, v in sorted(server["payments"].items())))
    if server["purchases"]:
        lines.append(f"Purchases confirmed: {server['purchases']:,.0f}")
    if server["admitted"]:
        lines.append(f"Admitted from the room: {server['admitted']:,.0f}")
    if server["scans"]:
        lines.append("Scans: " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(server["scans"].items())))
    lines.append("Responses: " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(server["statuses"].items())))
    lines.append("At the end: " + (", ".join(f"{k} = {v:,.0f}" for k, v in sorted(
        server["gauges"].items())) or "no stream figures"))
    lines += ["", "| route (server time) | count | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
    for route, f in sorted(server["routes"].items(), key=lambda kv: -kv[1]["count"]):
        lines.append(f"| {route} | {f['count']:,.0f} | {f[0.5]:.1f} | {f[0.95]:.1f} | {f[0.99]:.1f} |")
    if svg:
        lines += ["", f"![throughput and latency over the run]({name}.svg)"]
    (report_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nreport: {report_dir / (name + '.md')}")
    return (not problems and not wrong and failures == 0 and fivexx == 0 and not script_errors
            and locust_code in (0, 1))


def scenario_words(plan: dict, config: dict) -> str:
    if plan["scenario"] in ("ga-rush", "bots", "mixed-day"):
        return (f"{plan['tickets']:,} tickets in three packages; the waiting room admits "
                f"{plan['rate']:g}/s, proof of work {plan['difficulty']} bits, opening "
                f"{plan['spawn_seconds'] + 5:g} s after the first arrival. "
                + plan.get("words_extra", ""))
    return plan.get("words", "")


def extra_lines(plan: dict, config: dict, server: dict, pg: dict, seen: dict, rows) -> list[str]:
    lines = []
    inbox = pg["inbox_ms"]
    if inbox:
        lines.append(f"| purchase to inbox (pay pressed → tickets email accepted), {len(inbox):,} "
                     f"orders | p50 {pct(inbox, .5) / 1000:.1f} s, p99 {pct(inbox, .99) / 1000:.1f} s |")
    seating = pg.get("seating")
    if seating:
        for sec in seating["sections"]:
            lines.append(f"| {sec['name']} seats sold / seats | {sec['sold']:,} / {sec['capacity']:,} |")
        lines.append(f"| seats with two tickets (verifier's seats_sold_twice) | "
                     f"{len(seating['twice']):,} |")
        counts = seen["counts"]
        conflicts = counts.get("hold 409 seat_unavailable", 0)
        left = sum(v for k, v in counts.items() if k.endswith("left without seats"))
        gave_up = sum(v for k, v in counts.items() if k.startswith("map: gave up"))
        lines.append(f"| seat-map holds refused: a seat taken since the map was read (each "
                     f"retried on a fresh map) | {conflicts:,}; {gave_up:,} buyer(s) gave up "
                     f"after their last try |")
        lines.append(f"| buyers who left with no seats (nothing left for their group) | {left:,} |")
    for hold in (r for r in rows if r["Name"].startswith("hold")):
        if int(hold["Request Count"]):
            lines.append(f"| {hold['Name']}, client p50 / p99 | {hold['50%']} / {hold['99%']} ms |")
    w = pg["window"]
    if w.get("n") and w.get("first") and w.get("last") and w["last"] > w["first"]:
        secs = (w["last"] - w["first"]).total_seconds()
        lines.append(f"| purchases / s (first to last payment, {secs:.0f} s) | {w['n'] / secs:,.1f} |")
    made = server["holds"].get("made", 0)
    if made:
        lines.append(f"| holds made | {made:,.0f} |")
    if seen["ranks"]:
        rho = spearman(seen["ranks"])
        lines.append(f"| pre-queue: rank correlation of arrival and admission ({len(seen['ranks']):,} "
                     f"visitors) | ρ = {rho:+.3f} (0: a lottery; 1: first come, first served) |")
    cohorts = pg["cohorts"]
    if "bot" in cohorts or seen["clients"].get("bots"):
        clients = seen["clients"]
        all_clients = sum(clients.values()) or 1
        all_tickets = sum(t for t, _ in cohorts.values()) or 1
        bot_tickets, bot_orders = cohorts.get("bot", (0, 0))
        all_orders = sum(o for _, o in cohorts.values()) or 1
        lines.append(f"| bots' share of orders | {bot_orders / all_orders:.1%} ({bot_orders:,} of "
                     f"{all_orders:,}) |")
        lines.append(f"| bots' share of tickets / of clients | {bot_tickets / all_tickets:.1%} "
                     f"({bot_tickets:,} of {all_tickets:,}) / {clients.get('bots', 0) / all_clients:.1%} "
                     f"({clients.get('bots', 0):,} of {all_clients:,}) |")
    return lines


def gate_lines(plan: dict, server: dict, pg: dict, seen: dict, rows) -> tuple[list[str], list[str]]:
    """The gate rush's verdict lines, and the checks among them that failed."""
    scans, counts, ci = server["scans"], seen["counts"], pg["checkins"]
    admitted = int(scans.get("admitted", 0))
    fresh = int(counts.get("fresh tickets scanned", 0))
    wrong = []
    same = admitted == fresh
    if not same:
        wrong.append(f"{admitted} admitted by the server, {fresh} tickets scanned fresh")
    lines = [(f"| admitted (server) == distinct tickets scanned fresh (the scanners) | "
              f"{admitted:,} {'==' if same else '**!=**'} {fresh:,} (of {plan['tickets']:,} "
              f"issued) |")]
    once = ci["rows"] == ci["tickets"] == admitted
    if not once:
        wrong.append(f"{ci['rows']} check-ins in Postgres for {ci['tickets']} tickets, "
                     f"{admitted} admitted")
    lines.append(f"| every admitted scan in Postgres once (check-ins; the verifier's "
                 f"`checkins_counted_once` agrees with the register) | {ci['rows']:,} check-ins "
                 f"of {ci['tickets']:,} tickets: {'yes' if once else '**no**'} |")
    total = sum(scans.values())
    agg = next((r for r in rows if r["Name"] == "Aggregated"), None)
    if ci["first"] and ci["last"] and ci["last"] > ci["first"]:
        secs = (ci["last"] - ci["first"]).total_seconds()
        lines.append(f"| scans / s (all {total:,.0f} scans over the first to last check-in, "
                     f"{secs:.0f} s) | {total / secs:,.1f} |")
    if agg and int(agg["Request Count"]):
        lines.append(f"| scan, client p50 / p99 (Locust, every kind) | {agg['50%']} / "
                     f"{agg['99%']} ms |")
    route = server["routes"].get("POST /api/scan")
    if route:
        lines.append(f"| scan, server p50 / p99 (/metrics histogram) | {route[0.5]:.1f} / "
                     f"{route[0.99]:.1f} ms |")
    return lines, wrong
