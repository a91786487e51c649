#!/usr/bin/env python3
"""The project's local AWS emulator: moto's server with a linearizable DynamoDB.

moto 5.2.5 in server mode answers requests on many threads, but its DynamoDB backend
has no lock. Two defects follow, both observed with this service:

* ``DynamoDBBackend.transact_write_items`` deep-copies every table a transaction
  names before running it and, when the transaction is cancelled, assigns that copy
  back. Whatever other requests committed to the table in between is erased: writes
  the emulator acknowledged are lost. The copy also costs memory and time
  proportional to the table's size on every transaction (gigabytes over a long run).
* Readers iterate a table's item dictionaries while writers change them, so scans,
  queries and serialisation fail with HTTP 500 "dictionary changed size during
  iteration", or see an item half updated.

This launcher starts the same server with two patches applied in-process:

1. One re-entrant lock serialises every DynamoDB and DynamoDB Streams request (the
   whole action: backend call and response serialisation) and every public method
   of both backends (other services, and moto's reset, reach them directly). That is
   DynamoDB's own contract: single-item operations are atomic, transactions are
   isolated.
2. ``transact_write_items`` no longer copies tables. Before the transaction runs,
   the launcher records the items it will write (a reference, or a copy for
   ``Update``, which moto applies in place) and the length of each table's stream;
   if the transaction fails for any reason, exactly those items and stream records
   are put back. Time and memory per transaction depend on the transaction, not on
   the table.

It also counts the responses it answered (5xx separately, by action) and serves them
with its memory at ``GET /_emulator/stats`` (JSON).

The patch is written against moto's exact code: the launcher refuses to start with
any other moto version, or if the code it patches does not look as expected.
"""

from __future__ import annotations

import argparse
import collections
import copy
import functools
import importlib.metadata
import inspect
import json
import os
import resource
import signal
import sys
import threading
import time
from typing import Any

PINNED_MOTO_VERSION = "5.2.5"
STATS_PATH = "/_emulator/stats"

# One lock for all of DynamoDB: moto keeps every table of every account and region in
# plain dictionaries reachable from any backend, so per-table locks would not be safe.
DYNAMODB_LOCK = threading.RLock()


def fail(message: str) -> None:
    print(f"emulator: error: {message}", file=sys.stderr)
    sys.exit(78)  # EX_CONFIG


def check_moto_version() -> None:
    try:
        installed = importlib.metadata.version("moto")
    except importlib.metadata.PackageNotFoundError:
        fail("moto is not installed in this Python environment (scripts/emulator.sh install)")
    if installed != PINNED_MOTO_VERSION:
        fail(
            f"moto {installed} is installed, but this launcher patches moto {PINNED_MOTO_VERSION}'s "
            f"DynamoDB internals and is only known to be correct for that version. Refusing to start. "
            f"Reinstall the pinned version (scripts/emulator.sh install), or review "
            f"scripts/emulator/launch.py against the new moto and update PINNED_MOTO_VERSION."
        )


# ---------------------------------------------------------------- patch 1: one lock


def _locked(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with DYNAMODB_LOCK:
            return fn(*args, **kwargs)

    wrapper.__dispatch_locked__ = True  # type: ignore[attr-defined]
    return wrapper


def _lock_public_methods(cls: type) -> list[str]:
    """Wraps every public plain method defined on `cls` (not generators: a lock held
    only while a generator is created protects nothing)."""
    wrapped = []
    for name, attr in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(attr):
            continue
        if inspect.isgeneratorfunction(attr) or getattr(attr, "__dispatch_locked__", False):
            continue
        setattr(cls, name, _locked(attr))
        wrapped.append(name)
    return wrapped


def patch_lock() -> None:
    from moto.core.base_backend import BaseBackend
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        # call_action runs the action and serialises its result: items are read
        # while the response is built, so the lock covers both.
        handler.call_action = _locked(handler.call_action)  # type: ignore[method-assign]
    for backend in (DynamoDBBackend, DynamoDBStreamsBackend):
        wrapped = _lock_public_methods(backend)
        if "transact_write_items" not in wrapped and backend is DynamoDBBackend:
            fail("moto's DynamoDBBackend has no transact_write_items method to patch")
        if "reset" not in vars(backend):
            # Inherited: moto-api/reset re-initialises every backend.
            backend.reset = _locked(BaseBackend.reset)  # type: ignore[method-assign]


# ------------------------------------------- patch 2: rollback of the touched items


class _CopyWithoutTableSnapshots:
    """Stands in for the `copy` module inside moto.dynamodb.models, whose only deep
    copy of a Table is transact_write_items' whole-table backup. Returning the table
    itself makes that backup, and its restore (`self.tables[name] = backup`), no-ops;
    the launcher's own item-level rollback replaces them. Every other use (update_item
    copies the old item for the stream record) gets the real deepcopy."""

    def __init__(self, table_cls: type) -> None:
        self._table_cls = table_cls

    def deepcopy(self, obj: Any, memo: Any = None) -> Any:
        if isinstance(obj, self._table_cls):
            return obj
        return copy.deepcopy(obj, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


_MISSING = object()


def _key_of(table: Any, attrs: Any) -> tuple[Any, Any] | None:
    """The (hash, range) DynamoType key of `attrs` in `table`, or None when `attrs`
    cannot name an item (moto then rejects that operation before writing it)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
        return None
    try:
        hash_value = DynamoType(attrs[table.hash_key_attr])
        if table.range_key_attr is None:
            return hash_value, None
        if table.range_key_attr not in attrs:
            return None
        return hash_value, DynamoType(attrs[table.range_key_attr])
    except Exception:
        return None


def _stored(table: Any, hash_value: Any, range_value: Any) -> Any:
    # No table.get_item: on a range-key table its defaultdict lookup inserts buckets.
    if range_value is None:
        return table.items.get(hash_value, _MISSING)
    bucket = table.items.get(hash_value)
    return _MISSING if bucket is None else bucket.get(range_value, _MISSING)


def _put_back(table: Any, hash_value: Any, range_value: Any, previous: Any) -> None:
    if range_value is None:
        if previous is _MISSING:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = previous
        return
    if previous is _MISSING:
        bucket = table.items.get(hash_value)
        if bucket is not None:
            bucket.pop(range_value, None)
            if not bucket:
                del table.items[hash_value]
    else:
        table.items[hash_value][range_value] = previous


def _snapshot(backend: Any, transact_items: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    items: list[tuple[Any, ...]] = []
    streams: dict[int, tuple[Any, ...]] = {}
    for entry in transact_items if isinstance(transact_items, list) else []:
        if not isinstance(entry, dict):
            continue
        for op_type, op in entry.items():
            if op_type not in ("Put", "Update", "Delete") or not isinstance(op, dict):
                continue  # ConditionCheck writes nothing
            try:
                table = backend.get_table(op.get("TableName"))
            except Exception:
                continue  # unknown table: moto fails that operation without writing
            key = _key_of(table, op.get("Item") if op_type == "Put" else op.get("Key"))
            if key is None:
                continue
            previous = _stored(table, *key)
            if op_type == "Update" and previous is not _MISSING:
                # moto applies update expressions to the stored Item in place.
                previous = copy.deepcopy(previous)
            items.append((table, key[0], key[1], previous))
            shard = table.stream_shard
            if shard is not None and id(table) not in streams:
                streams[id(table)] = (table, shard, shard.items, len(shard.items))
    return items, list(streams.values())


def _rollback(items: list[tuple[Any, ...]], streams: list[tuple[Any, ...]]) -> None:
    # Reverse order: if a key appears twice (moto then cancels), the first snapshot,
    # taken before anything ran, is the one that stays.
    for table, hash_value, range_value, previous in reversed(items):
        _put_back(table, hash_value, range_value, previous)
    for table, shard, records, length in streams:
        # A stream handed to a Lambda event source mapping is replaced by a new list;
        # those records have left the emulator and cannot be recalled.
        if table.stream_shard is shard and shard.items is records:
            del records[length:]


def patch_transactions() -> None:
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    inner = getattr(original, "__wrapped__", original)
    source = inspect.getsource(inner)
    for expected in ("copy.deepcopy(", "self.tables[table_name] = original_table_state[table_name]"):
        if expected not in source:
            fail(f"moto's transact_write_items no longer contains `{expected}`; the launcher's patch does not apply")
    if getattr(models, "copy", None) is not copy:
        fail("moto.dynamodb.models does not use the `copy` module as expected; the launcher's patch does not apply")
    models.copy = _CopyWithoutTableSnapshots(Table)  # type: ignore[assignment]

    @functools.wraps(inner)
    def transact_write_items(self: Any, transact_items: Any) -> Any:
        with DYNAMODB_LOCK:
            items, streams = _snapshot(self, transact_items)
            try:
                return inner(self, transact_items)
            except BaseException:
                # Any failure cancels the whole transaction, including the ones moto
                # itself does not roll back (e.g. two operations in one entry).
                _rollback(items, streams)
                raise

    transact_write_items.__dispatch_locked__ = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


# ---------------------------------------------------------------- health counters


def _memory_kib() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in KiB."""
    current = peak = 0
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    current = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1])
    except OSError:
        pass
    if not peak:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return current, peak


class Stats:
    def __init__(self, patched: bool) -> None:
        self.lock = threading.Lock()
        self.started = time.time()
        self.patched = patched
        self.requests = 0
        self.responses_5xx = 0
        self.by_action: collections.Counter[str] = collections.Counter()
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)

    def record(self, status: int, environ: dict[str, Any], error: str | None) -> None:
        with self.lock:
            self.requests += 1
            if status < 500:
                return
            self.responses_5xx += 1
            action = _action_of(environ)
            self.by_action[action] += 1
            self.recent.append({"at": time.time(), "status": status, "action": action, "error": error})

    def snapshot(self) -> dict[str, Any]:
        rss, peak = _memory_kib()
        with self.lock:
            return {
                "moto_version": PINNED_MOTO_VERSION,
                "dynamodb_linearizable": self.patched,
                "uptime_secs": round(time.time() - self.started, 1),
                "requests": self.requests,
                "responses_5xx": self.responses_5xx,
                "responses_5xx_by_action": dict(self.by_action),
                "recent_5xx": list(self.recent),
                "rss_bytes": rss * 1024,
                "peak_rss_bytes": peak * 1024,
            }


def _action_of(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target)
    query = environ.get("QUERY_STRING", "")
    for part in query.split("&"):
        if part.startswith("Action="):
            return part[len("Action=") :]
    path = environ.get("PATH_INFO", "/")
    return f"{environ.get('REQUEST_METHOD', '?')} /{path.lstrip('/').split('/', 1)[0]}"


class CountingApp:
    """WSGI middleware: counts responses by status and serves the stats."""

    def __init__(self, app: Any, stats: Stats) -> None:
        self.app = app
        self.stats = stats

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == STATS_PATH and environ.get("REQUEST_METHOD") == "GET":
            body = json.dumps(self.stats.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        seen: dict[str, int] = {}

        def counting_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, counting_start_response)
        except BaseException as e:  # the server answers 500 for an exception
            self.stats.record(500, environ, f"{type(e).__name__}: {e}"[:300])
            raise
        status = seen.get("status", 500)
        self.stats.record(status, environ, None if status < 500 else _error_text(result))
        return result


def _error_text(result: Any) -> str | None:
    try:
        if isinstance(result, list):
            return b"".join(result)[:300].decode("utf-8", "replace")
    except Exception:
        pass
    return None


# ---------------------------------------------------------------- server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("EMULATOR_PORT", "4566")))
    args = parser.parse_args(argv)

    check_moto_version()
    patch_lock()
    patch_transactions()

    from werkzeug.serving import run_simple

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    # moto builds some resource URLs (e.g. SQS queue URLs) from MOTO_PORT.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

    moto_app = DomainDispatcherApplication(create_backend_app)
    moto_app.debug = True  # type: ignore[attr-defined]  # as moto_server: errors reach the log
    app = CountingApp(moto_app, Stats(patched=True))
    print(
        f"emulator: moto {PINNED_MOTO_VERSION} with linearizable DynamoDB on http://{args.host}:{args.port} "
        f"(stats: GET {STATS_PATH})",
        file=sys.stderr,
        flush=True,
    )
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
