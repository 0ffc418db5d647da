"""Load benchmark: our chat server beside the Channels tutorial app, on one core each.

    python bench/load.py                      # every scenario (under 10 minutes)
    python bench/load.py --quick              # shorter steps, 1,000 idle sockets (~2 min)
    python bench/load.py fanout100 write      # some scenarios
    python bench/load.py bigroom              # 5,000 sockets join one room (~7-10 minutes)
    python bench/load.py --markdown docs/PERFORMANCE-tables.md

Servers run pinned to core 0 (`taskset -c 0`), this generator on core 1; PostgreSQL and
Redis are not pinned. Our server uses its own database `bench` (created if missing,
migrated, seeded with users `bench-NNNNN`) and the Redis key prefix `bench-<random>`,
removed at the end. Results go to stdout and bench/results/latest.json.
"""

import argparse
import asyncio
import fcntl
import json
import os
import platform
import resource
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import report
import scenario_bigroom
from scenarios import SCENARIOS, Config, Context, Scenario
from servers import BENCH, GENERATOR_CORE, ROOT

# 5,000 sockets join one room, then 10 msg/s into it (bench/scenario_bigroom.py).
SCENARIOS["bigroom"] = Scenario(
    users=scenario_bigroom.users, rooms=scenario_bigroom.rooms, run=scenario_bigroom.run
)
report.RENDERERS["bigroom"] = scenario_bigroom.tables

PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres", "database": "bench"}
DATABASE_URL = f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{PG['database']}"
REDIS_URL = "redis://127.0.0.1:6379/0"
RESULTS = BENCH / "results" / "latest.json"
TOKEN_HOURS = 3
# One run at a time on this machine: runs share core 0 and the `bench` database.
LOCK = Path(tempfile.gettempdir()) / "chat-load-bench.lock"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (all)")
    parser.add_argument("--quick", action="store_true", help="short steps, fewer idle sockets")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write Markdown tables")
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}")
    return args


def take_machine_lock() -> None:
    """Hold an exclusive lock for the run, waiting for another run to finish first.

    The descriptor is left open on purpose: the lock lasts until this process exits.
    """
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another load.py run holds {LOCK}; waiting for it to finish", flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)


def pin_and_raise_limits(wanted_files: int) -> int:
    """Run on the generator core; allow as many open files as the hard limit lets us.

    Servers started later inherit the raised limit.
    """
    os.sched_setaffinity(0, {GENERATOR_CORE})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted_files if hard == resource.RLIM_INFINITY else min(wanted_files, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def base_env(prefix: str) -> dict[str, str]:
    """Our server's environment: the bench database, no Redis, no practical rate limit."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}
    env.update(
        DATABASE_URL=DATABASE_URL,
        SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SECRET=secrets.token_urlsafe(50),
        CHANNEL_PREFIX=prefix,
        ENV="development",
        DEBUG="false",
        LOG_LEVEL="warning",
        CHAT_RATE_LIMIT="1000000/1s",
        AUTH_RATE_LIMIT="1000000/1s",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    """Create the `bench` database if missing and migrate it."""
    made = subprocess.run(
        ["createdb", "-h", PG["host"], "-U", PG["user"], PG["database"]],
        capture_output=True,
        text=True,
    )
    if made.returncode and "already exists" not in made.stderr:
        raise RuntimeError(f"createdb failed: {made.stderr.strip()}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def seed(env: dict[str, str], config: Config, names: list[str]) -> tuple[dict[str, Any], dict]:
    """Users, rooms and tokens for the chosen scenarios, each on its own users."""
    first_user, rooms, total = {}, {}, 0
    for name in names:
        scenario = SCENARIOS[name]
        first_user[name] = total
        rooms.update(scenario.rooms(config, total))
        total += scenario.users(config)
    spec = {"users": total, "rooms": rooms, "token_hours": TOKEN_HOURS}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out = Path(tmp) / "spec.json", Path(tmp) / "seed.json"
        spec_path.write_text(json.dumps(spec))
        seed_py = str(BENCH / "seed.py")
        subprocess.run(
            [sys.executable, seed_py, "setup", str(spec_path), str(out)], env=env, check=True
        )
        return json.loads(out.read_text()), first_user


def drop_redis_keys(prefix: str) -> int:
    """Delete this run's keys (and only those) from the shared Redis."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])
    return len(keys)


def code_version() -> str:
    """The checkout's commit, and whether files differ from it (read-only git calls)."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    if commit.returncode:
        return "unknown"
    return commit.stdout.strip() + (" with uncommitted changes" if changed.stdout.strip() else "")


def machine_facts(nofile: int) -> dict[str, Any]:
    from importlib.metadata import version

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **{pkg: version(pkg) for pkg in ("Django", "channels", "daphne", "channels-redis")},
        "open_files_limit": nofile,
        "pinning": f"servers on core 0 (taskset), generator on core {GENERATOR_CORE}",
    }


async def run_scenarios(names: list[str], ctx: Context) -> dict[str, Any]:
    results = {}
    for name in names:
        print(f"== {name}", flush=True)
        began, cpu0, load_before = time.monotonic(), time.process_time(), os.getloadavg()
        try:
            results[name] = await SCENARIOS[name].run(ctx)
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        results[name]["elapsed_s"] = round(time.monotonic() - began, 1)
        results[name]["generator_cpu_s"] = round(time.process_time() - cpu0, 1)
        results[name]["loadavg"] = {"before": load_before, "after": os.getloadavg()}
        for table in report.tables(name, results[name]):
            print(report.as_text(table), end="\n\n", flush=True)
    return results


def main() -> None:
    args = parse_args()
    names = args.scenarios or list(SCENARIOS)
    config = Config.make(args.quick)
    take_machine_lock()
    nofile = pin_and_raise_limits(config.idle_sockets * 2 + 1000)
    prefix = f"bench-{secrets.token_hex(4)}"
    env = base_env(prefix)
    began, started, version = time.monotonic(), datetime.now(UTC), code_version()
    print(f"preparing the bench database ({DATABASE_URL}), Redis prefix {prefix}", flush=True)
    prepare_database(env)
    seeded, first_user = seed(env, config, names)
    ctx = Context(
        config=config,
        env=env,
        redis_url=REDIS_URL,
        tokens=seeded["tokens"],
        rooms=seeded["rooms"],
        first_user=first_user,
    )
    try:
        results = asyncio.run(run_scenarios(names, ctx))
    finally:
        dropped = drop_redis_keys(prefix)
    document = {
        "command": shlex.join(["python", "bench/load.py", *sys.argv[1:]]),
        "date": started.isoformat(timespec="seconds"),
        "code": version,
        "quick": args.quick,
        "elapsed_s": round(time.monotonic() - began),
        "machine": machine_facts(nofile),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}; removed {dropped} Redis keys under {prefix}")
    for line in report.log_warnings(results):
        print(f"server log: {line}")
    if args.markdown:
        args.markdown.write_text(markdown(document))
        print(f"wrote {args.markdown}")


def markdown(document: dict[str, Any]) -> str:
    """Every table of the run, with the command and the machine, as Markdown."""
    machine = ("Machine", ["fact", "value"], [[k, str(v)] for k, v in document["machine"].items()])
    parts = [
        f"Command: `{document['command']}` on {document['code']} "
        f"(started {document['date']}, took {document['elapsed_s']} s)",
        report.as_markdown(machine),
    ]
    for name, data in document["results"].items():
        parts += [report.as_markdown(t) for t in report.tables(name, data)]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
