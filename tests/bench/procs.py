"""Starting and stopping the benchmark's processes: loopback only, free ports, bounded waits, always torn down.

Every process is started in its own session (so its process group id is its pid) and stopped by that id only:
SIGTERM to the group, then SIGKILL after a grace period.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Proc:
    """One started process (group), with its output in a log file."""

    def __init__(self, name: str, argv: list, *, env=None, cwd=ROOT, log_dir: Path):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 15.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pgid {self.pid}) did not stop in {grace:.0f} s; killing it")
        # Children may outlive a leader that exited: clear the whole group we created.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def children(self) -> list[int]:
        """Direct child pids (e.g. gunicorn workers), from /proc."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.pid:
                pids.append(int(entry.name))
        return sorted(pids)


class Procs:
    """All processes of a run; `stop_all` stops them in reverse start order (idempotent)."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.items: list[Proc] = []

    def start(self, name, argv, **kwargs) -> Proc:
        proc = Proc(name, argv, log_dir=self.log_dir, **kwargs)
        self.items.append(proc)
        log(f"started {name} (pid {proc.pid})")
        return proc

    def stop(self, proc: Proc) -> None:
        if proc in self.items:
            proc.stop()
            self.items.remove(proc)
            log(f"stopped {proc.name}")

    def stop_all(self) -> None:
        while self.items:
            self.stop(self.items[-1])


def http_request(port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout: float = 10.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_http(proc: Proc, port: int, path: str = "/", *, timeout: float = 60.0, ok=lambda status: True) -> None:
    """Wait until the server answers `path` with a status `ok` accepts; fail early if the process died."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            status, _ = http_request(port, "GET", path, timeout=2)
            if ok(status):
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready on port {port} after {timeout:.0f} s ({last}):\n{proc.tail()}")


def run_checked(argv, *, env=None, timeout: float = 300, what: str = "") -> str:
    """Run a command to completion (bounded); return stdout, raise with its output on failure."""
    result = subprocess.run([str(a) for a in argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{what or argv} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


PY = sys.executable


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int):
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); ppid is field 4, utime 14, stime 15 → indexes 1, 11, 12 here.
    return int(fields[1]), int(fields[11]) + int(fields[12])


def tree_cpu_seconds(roots) -> float:
    """CPU time (user + system) used so far by the processes `roots` and all their descendants."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            s = _stat(int(entry.name))
            if s:
                stats[int(entry.name)] = s
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, [r for r in roots if r in stats], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += stats[pid][1]
        todo.extend(children.get(pid, []))
    return total / CLK_TCK


def pids_cpu_seconds(pids) -> float:
    total = 0
    for pid in pids:
        s = _stat(pid)
        if s:
            total += s[1]
    return total / CLK_TCK
