"""winmdm at fleet scale on PostgreSQL: a million hosts, a profile for 100,000, several servers.

    python benchmarks/scale.py [--database postgresql://...] [--hosts 1000000] [--fanout 100000]
                               [--servers 1,2,4] [--keep] [--reuse winmdm_bench_<hex>]

Issue 13 item 3. The script makes a throwaway database (`winmdm_bench_<hex>`), migrates it with
winmdm's own migrations and fills it with server-side SQL (INSERT ... SELECT generate_series):
`--hosts` hosts with a realistic mix of MDM status, enrollment kind and team, `--fanout` of them
enrolled (On or Pending) in one team, "Fan-out"; VACUUM ANALYZE; then `--checked-in` percent of
the hosts check in (last_seen_at), as in a live fleet between two autovacuums (build_fleet says
why that matters). Then, always through winmdm's own code (the services the API routes and UI
pages call, never hand-written SQL), it times:

- **dashboard**: `HostService.summary` (`GET /api/v1/mdm/summary`, the dashboard page), for
  every team and for the Fan-out team alone;
- **hosts page by status**: `HostService.list` with one MDM status, first page of 50 and its
  total (`GET /api/v1/hosts?mdm_status=...`, the hosts page);
- **fan-out**: `ProfileService.add_profile` for the Fan-out team (`POST /api/v1/profiles`, the
  UI's "Add profile"): the profile and one delivery per enrolled host, queued in one
  transaction. Each run's profile is deleted afterwards so every run queues the same work.

Each prints median and p95 of `--runs` runs (after one warm-up) against the goals of the issue
(reads <= 100 ms, fan-out <= 5 s). `--explain` adds EXPLAIN (ANALYZE, BUFFERS) of the SELECTs
those calls ran, captured from SQLAlchemy, to show why a figure is what it is.

`--servers 1,2,4` then starts that many `winmdm serve` processes on the same database and data
folder (all announce the first one's URL, as instances behind one load balancer would), enrolls
`--devices` over HTTPS for each server count and drives idle check-ins spread over the servers
with the client processes of benchmarks/checkin.py (one keep-alive TLS connection per device,
each client process bound to one server), the counts taking turns round by round. It prints
check-ins per wall second, per server CPU-second (all servers' threads together) and PostgreSQL
backend CPU per check-in, and each as a ratio to one server. The machine may have fewer cores
than servers: then wall-clock throughput cannot grow with servers, and the honest scaling figure
is that the work per check-in (server CPU-seconds and PostgreSQL CPU per check-in) stays flat as
servers are added; the output says so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the device emulator, the Entra stand-in, the server runner
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/checkin.py, run as a script or imported

import sqlalchemy as sa  # noqa: E402
from sqlalchemy import event  # noqa: E402

from winmdm.domain.fleet import HostFilter, HostMDMStatus, TeamScope  # noqa: E402
from winmdm.domain.models import MDMStatus  # noqa: E402
from winmdm.services.hosts import HostService  # noqa: E402
from winmdm.services.profiles import ProfileService  # noqa: E402
from winmdm.storage import SQLStorage, create_engine_for, migrate  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_READ_MS = 100.0
GOAL_FANOUT_S = 5.0
TEAMS = 20  # besides Fan-out; about 10 % of the other hosts are in No team
FANOUT_TEAM = "Fan-out"
PER_PAGE = 50  # the hosts page (web/ui/fleet_routes.PER_PAGE) and the API's default per_page
PROFILE = """<Replace><CmdID>1</CmdID><Item><Meta><Format xmlns="syncml:metinf">int</Format></Meta>
<Target><LocURI>./Device/Vendor/MSFT/Policy/Config/Update/ActiveHoursStart</LocURI></Target>
<Data>8</Data></Item></Replace>"""


# -- the database --------------------------------------------------------------------------------
@contextlib.contextmanager
def bench_database(server_url: str, *, keep: bool, reuse: str | None) -> Iterator[tuple[str, str]]:
    """(URL, database name): a new `winmdm_bench_<hex>` on the server, dropped at the end unless
    `keep`; or the kept database `reuse`, never dropped."""
    import psycopg

    admin = sa.make_url(server_url).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    name = reuse or f"winmdm_bench_{secrets.token_hex(4)}"
    if not name.startswith("winmdm_bench_"):
        raise SystemExit(f"--reuse takes a database this script made (winmdm_bench_...), not {name!r}")
    if reuse is None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False), name
    finally:
        if keep or reuse:
            print(f"\nkept database {name} (reuse it with --reuse {name}; drop it with DROP DATABASE)")
        else:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Hosts by a hash of their number, so statuses, kinds and teams are interleaved over the ids as
# in a fleet that grew over time. Per mille of the hosts outside Fan-out: On (automatic) 520,
# On (manual) 300, On with no kind (enrolled before revision 0003, shown On (automatic)) 30,
# Pending 40, Off 110 (unenrolled, with the kind they last had, or none: never enrolled).
# Fan-out's hosts are all enrolled: On (automatic) 600, On (manual) 340, Pending 60.
_HOSTS = """
INSERT INTO hosts (uuid, display_name, hw_dev_id, device_id, serial, team_id, mdm_status,
                   enrollment_kind, os_version, os_edition, idp_username, created_at, updated_at,
                   last_seen_at, manufacturer, model, language, dm_version, entra_device_id)
SELECT md5('uuid' || i)::uuid::text,
       'DESKTOP-' || upper(substr(md5('name' || i), 1, 7)),
       upper(md5('hw' || i) || md5('hw+' || i)),
       upper(md5('device' || i)::uuid::text),
       CASE WHEN r % 50 = 0 THEN 'To be filled by O.E.M.'
            ELSE 'SN' || upper(substr(md5('sn' || i), 1, 10)) END,
       CASE WHEN fan THEN :fan_team WHEN t < 100 THEN NULL ELSE :first_team + t % :teams END,
       CASE WHEN fan THEN (CASE WHEN r < 940 THEN 'on' ELSE 'pending' END)
            WHEN r < 850 THEN 'on' WHEN r < 890 THEN 'pending' ELSE 'off' END,
       CASE WHEN fan THEN (CASE WHEN r < 600 THEN 'automatic' ELSE 'manual' END)
            WHEN r < 520 THEN 'automatic' WHEN r < 820 THEN 'manual' WHEN r < 850 THEN NULL
            WHEN r < 890 THEN (CASE WHEN r % 2 = 0 THEN 'automatic' ELSE 'manual' END)
            ELSE (CASE r % 3 WHEN 0 THEN NULL WHEN 1 THEN 'automatic' ELSE 'manual' END) END,
       '10.0.' || (CASE WHEN r % 4 = 0 THEN '19045.' ELSE '22631.' END) || (4000 + r % 500),
       (ARRAY['4', '48', '121', '101'])[1 + t % 4],
       CASE WHEN r % 20 = 0 THEN NULL ELSE 'user' || i || '@corp.example' END,
       :now - make_interval(days => 1 + i % 900), :now - make_interval(days => i % 30),
       CASE WHEN r >= 890 AND NOT fan THEN :now - make_interval(days => 30 + i % 300)
            ELSE :now - make_interval(mins => i % 2880) END,
       (ARRAY['Dell Inc.', 'LENOVO', 'HP', 'Microsoft Corporation'])[1 + r % 4],
       (ARRAY['Latitude 7440', 'ThinkPad T14 Gen 4', 'EliteBook 840 G10', 'Surface Laptop 5'])[1 + r % 4],
       'en-US', '1.3',
       CASE WHEN t % 3 = 0 THEN md5('entra' || i)::uuid::text END
FROM (SELECT i, abs(hashint4(i)) % 1000 AS r, abs(hashint4(i + 1000000007)) % 1000 AS t,
             i % :every = 0 AND i / :every <= :fanout AS fan
      FROM generate_series(1, :hosts) AS i) AS drawn
"""


def build_fleet(url: str, hosts: int, fanout: int, checked_in: float) -> int:
    """Teams and hosts by INSERT ... SELECT, then VACUUM ANALYZE (what autovacuum would soon do
    after such a load), then `checked_in` (a fraction) of the hosts check in. Returns the
    Fan-out team's id.

    A live fleet is never freshly vacuumed: every check-in sets its host's last_seen_at, which
    takes the page out of the visibility map until the next vacuum, and autovacuum comes after
    20 % of the rows changed; 10 %, the default here, is the average state between two. Counts
    read from hosts (index-only scans) depend on it; the measured state must be the real one.
    Hosts only: enrollments, certificates and sessions are not read by any of the timed calls
    (the check-in part enrolls its own devices over HTTPS)."""
    if not 0 < fanout <= hosts:
        raise SystemExit("--fanout must be between 1 and --hosts")
    now = datetime.now(UTC)
    engine = create_engine_for(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO teams (name, created_at, end_user_auth) "
                    "SELECT 'Team ' || lpad(n::text, 2, '0'), :now, false FROM generate_series(1, :teams) n"
                ),
                {"now": now, "teams": TEAMS},
            )
            first_team = conn.execute(sa.text("SELECT min(id) FROM teams")).scalar_one()
            fan_team = conn.execute(
                sa.text(
                    "INSERT INTO teams (name, created_at, end_user_auth) "
                    "VALUES (:n, :now, false) RETURNING id"
                ),
                {"n": FANOUT_TEAM, "now": now},
            ).scalar_one()
            conn.execute(
                sa.text(_HOSTS),
                {
                    "hosts": hosts,
                    "fanout": fanout,
                    "every": hosts // fanout,
                    "fan_team": fan_team,
                    "first_team": first_team,
                    "teams": TEAMS,
                    "now": now,
                },
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
        with engine.begin() as conn:  # what InventoryStore.checked_in does, for many hosts at once
            conn.execute(
                sa.text(
                    "UPDATE hosts SET last_seen_at = :now "
                    "WHERE abs(hashint4(id + 12345)) % 100000 < :share AND mdm_status <> 'off'"
                ),
                {"now": now, "share": round(100_000 * checked_in)},
            )
        return fan_team
    finally:
        engine.dispose()


def fanout_team(storage: SQLStorage) -> int:
    with storage.transaction() as tx:
        team = next((t for t in tx.teams.list() if t.name == FANOUT_TEAM), None)
    if team is None:
        raise SystemExit(f"the database has no team {FANOUT_TEAM!r}: it was not made by this script")
    return team.id


def describe_fleet(url: str) -> None:
    """What was built, counted the slow way (untimed): the reader can check the mix."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT mdm_status, coalesce(enrollment_kind, '-') AS kind, count(*) FROM hosts "
                    "GROUP BY 1, 2 ORDER BY 1, 2"
                )
            ).all()
            teams = conn.execute(
                sa.text(
                    "SELECT coalesce(t.name, 'No team') AS name, count(*) AS n FROM hosts h "
                    "LEFT JOIN teams t ON t.id = h.team_id GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
                )
            ).all()
            size = conn.execute(
                sa.text("SELECT pg_size_pretty(pg_total_relation_size('hosts'))")
            ).scalar_one()
            autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar_one()
    finally:
        engine.dispose()
    mix = ", ".join(f"{status}/{kind} {n:,}" for status, kind, n in rows)
    print(f"  hosts by stored status/kind: {mix}")
    print(f"  largest teams: {', '.join(f'{name} {n:,}' for name, n in teams)}; hosts table {size}")
    if autovacuum != "on":
        print(f"  note: this PostgreSQL runs with autovacuum {autovacuum}: the state measured stays as built")


# -- timing --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Timed:
    name: str
    seconds: list[float]
    goal: float  # seconds
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        """Nearest rank; with few runs this is the slowest but one, or the slowest."""
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    def line(self) -> str:
        verdict = "met" if self.p95 <= self.goal else "NOT met"
        unit, scale = ("s", 1.0) if self.goal >= 1 else ("ms", 1000.0)
        return (
            f"  {self.name:<42}median {scale * self.median:9.1f} {unit:<3}"
            f"p95 {scale * self.p95:9.1f} {unit:<3}"
            f"(goal <= {scale * self.goal:g} {unit}: {verdict}){self.note}"
            + (f"\n  {'':<42}runs: {', '.join(f'{s:.2f}' for s in self.seconds)} s" if unit == "s" else "")
        )


def timed(
    name: str, call: Callable[[], Any], runs: int, goal: float, *, after: Callable[[], None] | None = None
) -> Timed:
    """One warm-up call, then `runs` timed calls; `after` runs untimed after each call."""
    seconds = []
    for n in range(runs + 1):
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        if n:
            seconds.append(elapsed)
        if after is not None:
            after()
    return Timed(name, seconds, goal)


@contextlib.contextmanager
def captured(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) winmdm runs meanwhile, as the driver gets them."""
    found: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        found.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", before)


def explain(engine: sa.Engine, name: str, call: Callable[[], Any]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of every SELECT `call` ran, in a transaction rolled back."""
    with captured(engine) as statements:
        call()
    print(f"\n  -- EXPLAIN ANALYZE: {name}")
    for statement, parameters in statements:
        if not statement.lstrip().upper().startswith("SELECT"):
            continue
        with engine.connect() as conn:
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars()
            print("     " + " ".join(statement.split())[:300])
            for line in plan:
                print("       " + line)
            conn.rollback()


def run_fleet(args: argparse.Namespace, url: str) -> list[Timed]:
    engine = create_engine_for(url)
    storage = SQLStorage(engine)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    profiles = ProfileService(storage, clock)
    hosts = HostService(storage, clock, profiles=profiles)  # as runtime.build wires them
    team_id = fanout_team(storage)
    results: list[Timed] = []
    try:
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("dashboard: summary, every team", lambda: hosts.summary(TeamScope.ALL)),
            (f"dashboard: summary, team {FANOUT_TEAM}", lambda: hosts.summary(team_id)),
        ]
        for status in HostMDMStatus:
            wanted = HostFilter(mdm_status=status, per_page=PER_PAGE)
            cases.append((f"hosts page: {status.label}", lambda wanted=wanted: hosts.list(wanted)))
        for name, call in cases:
            result = timed(name, call, args.runs, GOAL_READ_MS / 1000)
            found = call()
            result.note = f"   [{found.total:,} hosts]" if hasattr(found, "total") else ""
            results.append(result)
            print(result.line(), flush=True)
        if args.explain:
            for name, call in cases:
                explain(engine, name, call)

        if args.fanout_runs < 1:
            return results
        made: list[int] = []

        def fan_out() -> None:
            profile = profiles.add_profile(
                team_id, f"Active hours {secrets.token_hex(3)}", PROFILE, actor="scale.py"
            )
            made.append(profile.id)

        def forget() -> None:
            # Untimed housekeeping, so every run queues the same work into the same tables.
            with engine.begin() as conn:
                for profile_id in made:
                    conn.execute(
                        sa.text(
                            "DELETE FROM commands WHERE id IN (SELECT c.id FROM commands c "
                            "WHERE (c.context ->> 'profile_id')::int = :p)"
                        ),
                        {"p": profile_id},
                    )
                    conn.execute(sa.text("DELETE FROM profiles WHERE id = :p"), {"p": profile_id})
            made.clear()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE) host_commands, host_profiles, commands")

        try:
            result = timed(
                f"fan-out: profile to {FANOUT_TEAM}", fan_out, args.fanout_runs, GOAL_FANOUT_S, after=forget
            )
        except Exception as exc:  # a failure is a figure too: say what broke
            print(f"  fan-out: profile to {FANOUT_TEAM}: FAILED: {type(exc).__name__}: {str(exc)[:300]}")
            forget()
        else:
            with storage.transaction() as tx:
                enrolled = len(
                    tx.hosts.list_ids(team_id=team_id, mdm_statuses=(MDMStatus.ON, MDMStatus.PENDING))
                )
            result.note = f"   [{enrolled:,} deliveries each]"
            results.append(result)
            print(result.line(), flush=True)
            if args.explain:
                explain(engine, "fan-out", fan_out)
                forget()
    finally:
        storage.close()
    return results


# -- several `winmdm serve` on one database ------------------------------------------------------
@dataclasses.dataclass
class Scaled:
    servers: int
    checkins: Any  # checkin.Measured: all servers' CPU, all clients' check-ins
    machine_busy: float  # share of all the machine's CPUs in use meanwhile (every process)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def run_servers(args: argparse.Namespace, url: str, database_name: str) -> list[Scaled]:
    """1, 2, 4 ... `winmdm serve` on the database and one data folder; idle check-ins spread
    over them by the client processes of benchmarks/checkin.py.

    Every server runs from the start; each count has its own devices and client processes
    (a device's nonce lives in one process), and the counts take turns round by round, so the
    other load on a shared machine falls on all of them alike."""
    from checkin import TENANT, KeepAliveHTTPS, Load, Measured, enroll_devices

    from tests.support.entra_issuer import EntraIssuer
    from tests.support.server import RunningServer, start_server

    counts = sorted({int(n) for n in args.servers.split(",") if n.strip()})
    if not counts or counts[0] < 1 or args.clients < counts[-1]:
        raise SystemExit("--servers takes counts from 1, and --clients must be at least the largest")
    print(
        f"\n== idle check-ins on {', '.join(map(str, counts))} `winmdm serve` processes sharing the "
        f"database and one data folder =="
    )
    print(
        f"  {args.devices} devices and {args.clients} client processes per count (one keep-alive TLS "
        f"connection per device, client n on server n mod count, one request in flight per client); "
        f"{args.seconds:g} s per count in {args.rounds} rounds, the counts taking turns; nothing "
        f"pinned: servers, clients and PostgreSQL share the machine's {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="winmdm-scale-") as tmp, EntraIssuer() as issuer:
        data_dir = Path(tmp) / "data"
        env = {
            "WINMDM_DATABASE_URL": url,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": issuer.jwks_url,
            "WINMDM_LOG_LEVEL": args.log_level,
            # Client processes open all their devices' connections before the first round, and
            # starting them all can take longer than the 10 s a kept-alive connection may stay
            # silent (web/connections.py answers 408 then); in the rounds none is idle that long.
            "WINMDM_HEADER_TIMEOUT": "600",
        }
        servers: list[RunningServer] = [start_server(data_dir, env)]
        # Every instance announces the first one's URL, as all would announce the load
        # balancer's: enrollment documents and SyncHdr targets name it whichever one answers.
        shared = {**env, "WINMDM_SERVER_URL": servers[0].url}
        loads: dict[int, Any] = {}
        try:
            while len(servers) < counts[-1]:
                servers.append(start_server(data_dir, shared))
            started = time.perf_counter()
            devices = {
                count: enroll_devices(servers[0], issuer, args.devices, Path(tmp) / "certs", KeepAliveHTTPS)
                for count in counts
            }
            print(
                f"  {args.devices * len(counts)} devices enrolled over HTTPS (+ first and one idle "
                f"session each): {time.perf_counter() - started:.1f} s"
            )
            for count in counts:
                spec = {
                    "url": servers[0].url,
                    "urls": [server.url for server in servers[:count]],
                    "ca": str(servers[0].dev_ca),
                    "folder": tmp,
                    "client": "raw",
                }
                loads[count] = Load(devices[count], args.clients, spec, None)
            measured = {count: Measured("checkin") for count in counts}
            jiffies = dict.fromkeys(counts, (0, 0))
            for round_number in range(args.rounds + 1):  # round 0 warms every count up
                for count in counts:
                    pids = [server.process.pid for server in servers[:count]]
                    seconds = args.warmup if round_number == 0 else args.seconds / args.rounds
                    busy0, total0 = machine_jiffies()
                    result = loads[count].round("checkin", seconds, pids, None, database_name)
                    busy1, total1 = machine_jiffies()
                    if result.errors:
                        raise SystemExit(f"check-ins on {count} servers failed: {result.first_error}")
                    if round_number:
                        measured[count].add(result)
                        busy, total = jiffies[count]
                        jiffies[count] = (busy + busy1 - busy0, total + total1 - total0)
            results = [
                Scaled(count, measured[count], jiffies[count][0] / max(1, jiffies[count][1]))
                for count in counts
            ]
            for result in results:
                print(scaled_line(result, results[0]), flush=True)
            for server in servers:
                if "Traceback" in server.log():
                    print(f"  !! {server.log_path} holds a traceback")
        finally:
            for load in loads.values():
                load.close()
            for server in servers:
                server.stop()
    print(
        f"  note: {os.cpu_count()} CPUs run the servers, the client processes and PostgreSQL together, so "
        "check-ins per wall second cannot grow past the first count that fills them; what must stay flat "
        "for near-linear scaling on more cores is the cost of a check-in: per server CPU-second (ratio "
        "~1.0) and PostgreSQL CPU per check-in"
    )
    return results


def scaled_line(result: Scaled, first: Scaled) -> str:
    m, base = result.checkins, first.checkins
    errors = f"  !! {m.errors} errors: {m.first_error}" if m.errors else ""
    per_round = " ".join(f"{rate:,.0f}" for rate in m.rounds)
    return (
        f"  {result.servers} server{'s' if result.servers > 1 else ' '}: {m.rate:7,.0f} check-ins/s "
        f"(x{m.rate / base.rate:.2f} vs 1 server) | {m.per_core:6,.0f} per server CPU-second "
        f"(x{m.per_core / base.per_core:.2f}) | PostgreSQL "
        f"{1e6 * m.backend_cpu / max(1, m.count):4,.0f} µs CPU per check-in | "
        f"p50 {m.percentile(0.5):.1f} ms p99 {m.percentile(0.99):.1f} ms | "
        f"machine {100 * result.machine_busy:.0f} % busy | per CPU-second by round: {per_round}{errors}"
    )


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database", default=DEFAULT_POSTGRES, help=f"PostgreSQL server URL ({DEFAULT_POSTGRES})"
    )
    parser.add_argument("--hosts", type=int, default=1_000_000, help="hosts to build (1,000,000)")
    parser.add_argument(
        "--fanout", type=int, default=100_000, help="enrolled hosts in the Fan-out team (100,000)"
    )
    parser.add_argument(
        "--checked-in",
        type=float,
        default=10.0,
        help="percent of hosts that checked in since the last vacuum (10: between two autovacuums)",
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each read (10, after a warm-up)")
    parser.add_argument(
        "--fanout-runs", type=int, default=3, help="timed runs of the fan-out (3, after a warm-up)"
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the SELECTs of each case")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--reuse", metavar="NAME", help="use a database kept by --keep (migrated to head, not rebuilt)"
    )
    parser.add_argument("--skip-fleet", action="store_true", help="only the --servers part")
    parser.add_argument(
        "--servers", default="", help="e.g. 1,2,4: winmdm serve processes for the check-in part"
    )
    parser.add_argument(
        "--devices", type=int, default=200, help="devices enrolled for the check-in part (200)"
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="client processes, one request in flight each (4)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="timed check-in seconds per server count (10)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds the seconds are cut into (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per server count (1)")
    parser.add_argument(
        "--log-level", default="info", help="the servers' WINMDM_LOG_LEVEL (info, as shipped)"
    )
    args = parser.parse_args(argv)

    print(f"winmdm scale benchmark on PostgreSQL; {os.cpu_count()} CPUs on this machine")
    with bench_database(args.database, keep=args.keep, reuse=args.reuse) as (url, name):
        engine = create_engine_for(url)
        try:
            started = time.perf_counter()
            migrate(engine)
            print(f"database {name}: migrated to head in {time.perf_counter() - started:.1f} s")
        finally:
            engine.dispose()
        if args.reuse is None:
            started = time.perf_counter()
            build_fleet(url, args.hosts, args.fanout, args.checked_in / 100)
            print(
                f"built {args.hosts:,} hosts ({args.fanout:,} enrolled in team {FANOUT_TEAM}) with "
                f"INSERT ... SELECT, VACUUM ANALYZE, then {args.checked_in:g} % of them checked in "
                f"(last_seen_at) as between two autovacuums: {time.perf_counter() - started:.1f} s"
            )
        describe_fleet(url)
        if not args.skip_fleet:
            print(f"\n== fleet reads and fan-out: median and p95 of {args.runs} / {args.fanout_runs} runs ==")
            run_fleet(args, url)
        if args.servers:
            run_servers(args, url, name)


if __name__ == "__main__":
    main()
