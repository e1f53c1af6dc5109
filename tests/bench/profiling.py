"""py-spy (installed into the venv only if missing) and a reader for its raw (collapsed-stack) output."""

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.bench.procs import log

VENV_BIN = Path(sys.executable).parent
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")
PROJECT_PREFIXES = ("connections/", "passthrough/", "integration_platform/", "syncing/")


def py_spy(install: bool = True) -> tuple[str | None, str]:
    """Path of py-spy and a note on how it got there."""
    for candidate in (VENV_BIN / "py-spy", shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return str(candidate), "already installed"
    if not install:
        return None, "missing"
    log("py-spy missing: installing it into the venv (pip install py-spy)")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], capture_output=True, text=True,
                            timeout=300)
    if result.returncode == 0 and (VENV_BIN / "py-spy").exists():
        return str(VENV_BIN / "py-spy"), "installed into the venv by the bench"
    return None, f"install failed: {result.stderr[-500:]}"


def record(py_spy_path: str, pid: int, out: Path, seconds: int, *, idle: bool = False, gil: bool = False,
           rate: int = 200) -> Path:
    argv = [py_spy_path, "record", "--pid", str(pid), "--subprocesses", "-d", str(seconds), "-r", str(rate),
            "-f", "raw", "-o", str(out)]
    if idle:
        argv.append("--idle")
    if gil:
        argv.append("--gil")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({result.returncode}): {result.stdout[-1000:]} {result.stderr[-1000:]}")
    return out


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for raw in stack.split(";"):
        if raw.startswith("process ") or raw.startswith("thread "):
            continue
        m = FRAME.match(raw)
        frames.append((m["func"], m["file"]) if m else (raw, ""))
    return frames


def summarize(path: Path, *, must_contain: str = "handle_request", top: int = 20) -> dict:
    """Self and inclusive sample shares per function, over the stacks that pass through `must_contain` (the
    request-handling frames of a gunicorn worker), plus the same for project code only."""
    total = 0
    self_counts, incl_counts = Counter(), Counter()
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or must_contain not in stack:
            continue
        n = int(count)
        frames = _frames(stack)
        total += n
        if frames:
            self_counts[frames[-1]] += n
        for key in set(frames):
            incl_counts[key] += n

    def share(counter, keys):
        return [{"func": f, "file": fl, "pct": 100.0 * counter[(f, fl)] / total if total else 0.0} for f, fl in keys]

    project = [k for k, _ in incl_counts.most_common() if k[1].startswith(PROJECT_PREFIXES)]
    return {
        "samples": total,
        "top_self": share(self_counts, [k for k, _ in self_counts.most_common(top)]),
        "top_inclusive_project": share(incl_counts, project[:top]),
        "inclusive": {f"{f} ({fl})": 100.0 * c / total for (f, fl), c in incl_counts.items()} if total else {},
    }


# Named groups for a readable breakdown: (label, function name, file suffix). Shares overlap (they nest).
GROUPS = [
    ("gunicorn handle_request (all request work)", "handle_request", "gunicorn/workers/gthread.py"),
    ("Django middleware chain + view", "get_response", "django/core/handlers/base.py"),
    ("DRF APIView.dispatch", "dispatch", "rest_framework/views.py"),
    ("DRF authentication (API key lookup)", "authenticate", "connections/authentication.py"),
    ("connection lookup by account token", "native_connection", "passthrough/connection_lookup.py"),
    ("envelope parse", "parse", "passthrough/envelopes.py"),
    ("passthrough_execute (send + log)", "passthrough_execute", "passthrough/services.py"),
    ("client.send (outbound call)", "send", "connections/client.py"),
    ("requests Session.request", "request", "requests/sessions.py"),
    ("credentials decrypt (decrypt_json)", "decrypt_json", "connections/crypto.py"),
    ("Connection.touch", "touch", "connections/models.py"),
    ("function_call_record (log row)", "function_call_record", "passthrough/services.py"),
    ("body capping + redaction (capped_text)", "capped_text", "passthrough/redaction.py"),
    ("remote_response (format answer)", "remote_response", "passthrough/formats.py"),
    ("psycopg cursor.execute (all SQL)", "execute", "psycopg/cursor.py"),
    ("DB connect / health check", "ensure_connection", "django/db/backends/base/base.py"),
    ("close_old_connections (request end)", "close_old_connections", "django/db/__init__.py"),
    ("JSON render (DRF)", "render", "rest_framework/renderers.py"),
]


def groups(summary: dict) -> list[tuple[str, float]]:
    inclusive = summary.get("inclusive", {})
    out = []
    for label, func, file_suffix in GROUPS:
        pct = 0.0
        for key, value in inclusive.items():
            name, _, file = key[:-1].rpartition(" (")
            if (name == func or name.endswith(f".{func}")) and file.endswith(file_suffix):
                pct += value
        out.append((label, pct))
    return out
