"""Server processes under measurement: started pinned to one core, stopped by PID.

CPU time and memory come from /proc (utime+stime of /proc/PID/stat, VmRSS of
/proc/PID/status), so nothing beyond the standard library is needed.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOGS = BENCH / "results" / "logs"
SERVER_CORE = 0
GENERATOR_CORE = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DIGITS = re.compile(r"\d+")  # "Task-57" and "Task-58" are one kind of line
# A structlog console line: "2026-01-01T00:00:00Z [warning  ] event_name  [logger] k=v".
LOG_LINE = re.compile(r"^\S+ \[(\w+)\s*\] (.+?)(?:\s{2,}|\s\[|$)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def core_busy_seconds(core: int) -> float:
    """Seconds core `core` spent on anything but idle and I/O wait (/proc/stat)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(x) for x in line.split()[1:]]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS
    raise RuntimeError(f"no cpu{core} in /proc/stat")


class CoreMeter:
    """How busy the server core and the generator core were over a window, whoever used
    them: what the servers and the generator did not use was someone else's work."""

    CORES = (SERVER_CORE, GENERATOR_CORE)

    def __init__(self) -> None:
        self.busy0 = [core_busy_seconds(c) for c in self.CORES]
        self.wall0 = time.monotonic()

    def shares(self) -> list[float]:
        wall = max(time.monotonic() - self.wall0, 1e-9)
        return [
            round((core_busy_seconds(c) - b) / wall, 3)
            for c, b in zip(self.CORES, self.busy0, strict=True)
        ]


class CpuMeter:
    """CPU share of one process over a window: `share()` = CPU seconds / wall seconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu0, self.wall0 = cpu_seconds(pid), time.monotonic()

    def share(self) -> float:
        wall = time.monotonic() - self.wall0
        return (cpu_seconds(self.pid) - self.cpu0) / wall if wall > 0 else 0.0


class Server:
    """One server process (`manage.py serve` or `daphne`), pinned with `taskset -c 0`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.teardown_at = 0  # log offset where the clients started to go away
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}-{self.port}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> "Server":
        """Start the process and wait until `/healthz` answers 200."""
        with self.log_path.open("wb") as log:
            # taskset execs the server, so the PID is the server's own.
            self.process = subprocess.Popen(
                ["taskset", "-c", str(SERVER_CORE), *self.argv],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C on the generator does not hit the server
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}: {self.tail()}"
                )
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer /healthz within {timeout:.0f}s")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.mark_teardown()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def mark_teardown(self) -> None:
        """Log lines from here on come from dropping the clients and stopping."""
        if not self.teardown_at:
            self.teardown_at = self.log_path.stat().st_size

    def tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def log_events(self) -> dict[str, dict[str, int]]:
        """Counts of "level event" in the log, while measuring and at teardown.

        Lines that are not structlog's (Daphne's own, tracebacks) count as "other".
        """
        data = self.log_path.read_bytes()
        cut = self.teardown_at or len(data)
        phases = {"measuring": data[:cut], "teardown": data[cut:]}
        counts: dict[str, dict[str, int]] = {}
        for phase, chunk in phases.items():
            found: Counter[str] = Counter()
            for line in chunk.decode(errors="replace").splitlines():
                match = LOG_LINE.match(line)
                if match:
                    found[f"{match[1]} {DIGITS.sub('N', match[2])[:120]}"] += 1
                elif "Traceback" in line or "ERROR" in line:
                    found["other " + line.strip()[:120]] += 1
            counts[phase] = dict(found.most_common())
        return counts


def chat_server(name: str, env: dict[str, str]) -> Server:
    """Our server: `manage.py serve` with the given environment."""
    argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1"]
    return Server(name, [*argv, "--port", "{port}"], env, ROOT)


def tutorial_server(name: str) -> Server:
    """The tutorial-style reference app under plain Daphne."""
    daphne = str(Path(sys.executable).parent / "daphne")
    argv = [daphne, "-b", "127.0.0.1", "-p", "{port}", "--websocket_timeout", "-1", "-v", "0"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tutorial.settings",
        "PYTHONPATH": str(BENCH),
        "PYTHONUNBUFFERED": "1",
    }
    return Server(name, [*argv, "tutorial.asgi:application"], env, BENCH)
