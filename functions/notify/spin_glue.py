"""The plumbing between notify and the WIT bindings componentize-py generates from wit/
(wasi:http 0.2.0, spin:sqlite 3.0.0, fermyon:spin/variables 2.0.0): read a request, send a response, run SQL and get rows
back as dicts. No business logic here; nothing else imports the bindings.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world.imports import sqlite, streams, variables
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Delete,
    Method_Get,
    Method_Head,
    Method_Other,
    Method_Patch,
    Method_Post,
    Method_Put,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# Bodies over this are refused before they are read in full (as the Rust components do).
MAX_BODY_BYTES = 64 * 1024
CORRELATION_HEADER = "x-correlation-id"


class TooLarge(Exception):
    """The request body is over MAX_BODY_BYTES (413)."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


_METHODS = {Method_Get: "GET", Method_Head: "HEAD", Method_Post: "POST", Method_Put: "PUT",
            Method_Delete: "DELETE", Method_Patch: "PATCH"}


def read_request(req: IncomingRequest) -> Request:
    """The method, path, query, lower-cased headers (the last of repeated ones) and body."""
    m = req.method()
    method = m.value.upper() if isinstance(m, Method_Other) else _METHODS.get(type(m), "OTHER")
    target = req.path_with_query() or "/"
    path, _, query = target.partition("?")
    headers: dict[str, str] = {}
    with req.headers() as fields:
        for name, value in fields.entries():
            headers[name.lower()] = value.decode("utf-8", "replace")
    body = _read_body(req)
    return Request(method, path, parse_qs(query, keep_blank_values=True), headers, body)


def _read_body(req: IncomingRequest) -> bytes:
    incoming = req.consume()
    chunks: list[bytes] = []
    size = 0
    with incoming.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(16 * 1024)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise TooLarge()
            chunks.append(chunk)
    IncomingBody.finish(incoming)
    return b"".join(chunks)


def send(out: ResponseOutparam, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    """Answer the request."""
    fields = Fields.from_list([(k, v.encode()) for k, v in headers])
    resp = OutgoingResponse(fields)
    resp.set_status_code(status)
    outgoing = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with outgoing.write() as stream:
        for i in range(0, len(body), 4096):
            stream.blocking_write_and_flush(body[i:i + 4096])
    OutgoingBody.finish(outgoing, None)


def json_body(status: int, value: Any, headers: list[tuple[str, str]]) -> tuple[int, list, bytes]:
    """A JSON answer, as (status, headers, body)."""
    return status, [("content-type", "application/json"), *headers], json.dumps(value, ensure_ascii=False).encode()


def variable(name: str) -> str:
    """A Spin application variable of this component (spin.toml's [component.notify.variables])."""
    try:
        return variables.get(name)
    except Err as e:
        raise RuntimeError(f"variable {name}: {e.value}") from None


def log(correlation: str, message: str) -> None:
    print(f"[notify] [{correlation}] {message}", file=sys.stderr)


# ------------------------------------------------------------------ SQLite

def _param(v: Any) -> Any:
    if v is None:
        return sqlite.Value_Null()
    if isinstance(v, bool):
        return sqlite.Value_Integer(int(v))
    if isinstance(v, int):
        return sqlite.Value_Integer(v)
    if isinstance(v, float):
        return sqlite.Value_Real(v)
    if isinstance(v, bytes):
        return sqlite.Value_Blob(v)
    return sqlite.Value_Text(str(v))


def _value(v: Any) -> Any:
    return None if isinstance(v, sqlite.Value_Null) else v.value


class Db:
    """One connection to a Spin SQLite database; rows come back as dicts by column name."""

    def __init__(self, conn: sqlite.Connection):
        self._conn = conn
        self._before_write: Optional[Callable[[], None]] = None

    @classmethod
    def open(cls, label: str) -> "Db":
        return cls(sqlite.Connection.open(label))

    def before_first_write(self, hook: Callable[[], None]) -> None:
        """Run `hook` once, before this connection's first statement that is not a SELECT
        (store.py sets its PRAGMAs there: a connection that only reads needs none)."""
        self._before_write = hook

    def _statement(self, sql: str, params: tuple):
        hook = self._before_write
        if hook is not None and sql.lstrip()[:6].upper() != "SELECT":
            self._before_write = None
            hook()
        return self._conn.execute(sql, [_param(p) for p in params])

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        result = self._statement(sql, params)
        return [dict(zip(result.columns, map(_value, row.values))) for row in result.rows]

    def execute(self, sql: str, params: tuple = ()) -> int:
        """Run a statement; the number of rows it changed."""
        self._statement(sql, params)
        return self._conn.changes()

    def transaction(self, work: Callable[["Db"], Any]) -> Any:
        """Run `work` in a write transaction (BEGIN IMMEDIATE, retried while another instance
        holds the lock for up to 10 s); commit on return, roll back on an exception."""
        waited, wait = 0.0, 0.002
        while True:
            try:
                self.execute("BEGIN IMMEDIATE")
                break
            except Err as e:
                text = repr(e.value).lower()
                if ("locked" not in text and "busy" not in text) or waited > 10:
                    raise
                time.sleep(wait)
                waited += wait
                wait = min(wait * 2, 0.05)
        try:
            result = work(self)
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")
        return result

