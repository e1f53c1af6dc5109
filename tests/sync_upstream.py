"""A small paginated upstream for the syncing tests, served by gunicorn on loopback (fixtures `sync_upstream` and
`sync_upstream_server` in conftest.py).

Its records, injected faults and a log of the requests it received live in one JSON file named by the
SYNC_UPSTREAM_STATE environment variable, so a test changes records between runs by rewriting the file.

    {"records": [{"id": "c001", "name": "...", "updated_at": <Unix seconds>}, ...],
     "faults": [{"path": "/cursor/contacts", "query": {"cursor": "c004"}, "status": 500, "times": 1,
                 "headers": {"Retry-After": "1"}}],
     "log": [{"path": ..., "query": {...}}]}

One collection per pagination style, records sorted by id:

    /cursor/contacts   ?cursor=<last id>&limit=&updated_after=<ISO>  {"results": [...], "next_cursor": id|null}
    /page/contacts     ?page=1..&per_page=&since=<Unix>             {"data": {"items": [...]}}   (Unix "modified")
    /offset/contacts   ?offset=&limit=&updated_after=<ISO>           {"items": [...]}
    /link/contacts     ?page=&per_page=&updated_after=<ISO>          [...] with Link: <...>; rel="next"
    /next/contacts     ?after=<last id>&updated_after=<ISO>          {"results": [...], "next": "/next/...?after=" | null}
    /none/contacts     ?updated_after=<ISO>                         [...]
    /broken/contacts   page 2 is not JSON (page style)

Every request is answered 200 unless a fault matches (its `times` counts down). Only the query values a
fault names must match.
"""

import fcntl
import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

STYLES = ("cursor", "page", "offset", "link", "next", "none", "broken")


# --- The state file ------------------------------------------------------------------------------------------------

@contextmanager
def locked_state(path: Path, write: bool):
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
            state.setdefault("records", [])
            state.setdefault("faults", [])
            state.setdefault("log", [])
            yield state
            if write:
                tmp = Path(f"{path}.tmp")
                tmp.write_text(json.dumps(state))
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class UpstreamState:
    """The tests' handle on the file: set records, change some, inject faults, read the request log."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def reset(self, records=()):
        with locked_state(self.path, write=True) as state:
            state.update(records=list(records), faults=[], log=[])

    def records(self) -> list:
        with locked_state(self.path, write=False) as state:
            return state["records"]

    def update(self, record_id, **fields):
        with locked_state(self.path, write=True) as state:
            for record in state["records"]:
                if record["id"] == record_id:
                    record.update(fields)

    def delete(self, record_id):
        with locked_state(self.path, write=True) as state:
            state["records"] = [r for r in state["records"] if r["id"] != record_id]

    def fault(self, path, status, *, query=None, times=1, headers=None, body=""):
        with locked_state(self.path, write=True) as state:
            state["faults"].append({"path": path, "query": query or {}, "status": status, "times": times,
                                    "headers": headers or {}, "body": body})

    def clear_faults(self):
        with locked_state(self.path, write=True) as state:
            state["faults"] = []

    def log(self) -> list:
        with locked_state(self.path, write=False) as state:
            return state["log"]

    def clear_log(self):
        with locked_state(self.path, write=True) as state:
            state["log"] = []


def make_records(count, *, updated_at=1_600_000_000.0, prefix="c"):
    return [{"id": f"{prefix}{i:04d}", "name": f"Contact {i}", "updated_at": updated_at} for i in range(1, count + 1)]


# --- The app -------------------------------------------------------------------------------------------------------

def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def since_filter(records, query, style):
    if style == "page":
        since = float(query["since"]) if "since" in query else None
    else:
        value = query.get("updated_after")
        since = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None
    return [r for r in records if since is None or r["updated_at"] >= since]


def rendered(record, style):
    if style == "page":
        return {"id": record["id"], "name": record["name"], "modified": int(record["updated_at"])}
    return {**{k: v for k, v in record.items() if k != "updated_at"}, "updated_at": iso(record["updated_at"])}


def after(records, last_id):
    return [r for r in records if last_id is None or r["id"] > last_id]


def answer(style, query, records, base):
    """(status, headers, body) of one page."""
    size = int(query.get("limit") or query.get("per_page") or 3)
    records = sorted(since_filter(records, query, style), key=lambda r: r["id"])
    if style == "cursor":
        page = after(records, query.get("cursor"))[:size]
        more = page and page[-1]["id"] != records[-1]["id"]
        return {"results": [rendered(r, style) for r in page], "next_cursor": page[-1]["id"] if more else None}, []
    if style in ("page", "broken"):
        number = int(query.get("page", "1"))
        page = records[(number - 1) * size:number * size]
        if style == "broken" and number == 2:
            return b"<html>oops</html>", []
        return {"data": {"items": [rendered(r, "page") for r in page]}}, []
    if style == "offset":
        offset = int(query.get("offset", "0"))
        return {"items": [rendered(r, style) for r in records[offset:offset + size]]}, []
    if style == "link":
        number = int(query.get("page", "1"))
        page = records[(number - 1) * size:number * size]
        headers = []
        if number * size < len(records):
            following = urlencode({**query, "page": str(number + 1)})
            headers.append(("Link", f'<{base}/link/contacts?{following}>; rel="next", <{base}/link/contacts>; rel="first"'))
        return [rendered(r, style) for r in page], headers
    if style == "next":
        page = after(records, query.get("after"))[:size]
        more = page and page[-1]["id"] != records[-1]["id"]
        following = f"/next/contacts?{urlencode({**query, 'after': page[-1]['id']})}" if more else None
        return {"results": [rendered(r, style) for r in page], "next": following}, []
    return [rendered(r, style) for r in records], []


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    base = f"http://{environ['HTTP_HOST']}"
    with locked_state(Path(os.environ["SYNC_UPSTREAM_STATE"]), write=True) as state:
        state["log"].append({"path": path, "query": query})
        fault = next((f for f in state["faults"] if f["path"] == path and f["times"] > 0
                      and all(query.get(k) == v for k, v in f["query"].items())), None)
        if fault is not None:
            fault["times"] -= 1
        records = state["records"]
    if fault is not None:
        body = fault["body"].encode()
        start_response(f"{fault['status']} Fault", [("Content-Type", "text/plain"), *fault["headers"].items(),
                                                    ("Content-Length", str(len(body)))])
        return [body]
    style = path.strip("/").split("/")[0]
    if style not in STYLES or not path.endswith("/contacts"):
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "not found"}']
    body, headers = answer(style, query, records, base)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(raw))), *headers])
    return [raw]


# --- For the tests -------------------------------------------------------------------------------------------------

SPECS = {
    "cursor": {"records_field": "results", "modified_since": {"param": "updated_after", "format": "iso8601"},
               "pagination": {"style": "cursor", "param": "cursor", "next_field": "next_cursor",
                              "page_size_param": "limit", "page_size": 3}},
    "page": {"records_field": "data.items", "updated_at_field": "modified",
             "modified_since": {"param": "since", "format": "unix"},
             "pagination": {"style": "page", "param": "page", "start": 1, "page_size_param": "per_page", "page_size": 3}},
    "offset": {"records_field": "items", "modified_since": {"param": "updated_after"},
               "pagination": {"style": "offset", "param": "offset", "page_size_param": "limit", "page_size": 3}},
    "link": {"records_field": "", "modified_since": {"param": "updated_after", "format": "iso8601"},
             "pagination": {"style": "link_header", "page_size_param": "per_page", "page_size": 3}},
    "next": {"records_field": "results", "modified_since": {"param": "updated_after", "format": "iso8601"},
             "pagination": {"style": "next_url", "next_field": "next", "page_size_param": "limit", "page_size": 3}},
    "none": {"records_field": "", "modified_since": {"param": "updated_after", "format": "iso8601"},
             "pagination": {"style": "none"}},
    "broken": {"records_field": "data.items", "updated_at_field": "modified",
               "pagination": {"style": "page", "param": "page", "page_size_param": "per_page", "page_size": 3}},
}


def sync_model(style="cursor", name="contacts", **overrides) -> dict:
    """A catalog `sync_models` entry for one collection of this upstream (manual-only unless told)."""
    return {"name": name, "path": f"/{style}/contacts", "frequency_seconds": None, **SPECS[style], **overrides}


@contextmanager
def serve(directory: Path):
    from tests.servers import gunicorn

    state = UpstreamState(Path(directory) / "upstream.json")
    state.reset()
    with gunicorn("tests.sync_upstream:app", env={**os.environ, "SYNC_UPSTREAM_STATE": str(state.path)}) as url:
        state.url = url
        yield state

