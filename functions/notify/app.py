"""notify: tells riders and drivers what happened to their ride (Python, built into a Wasm
component with componentize-py; see wit/world.wit for all it may import).

Owns the SQLite database `notify`; emits nothing. Routes:
  POST /events/notify       CloudEvents (binary or structured mode) from the broker's Triggers
  GET  /notifications       a bearer token's own (rider or driver), newest first; an operator
                            names ?phoneNumber= (a rider's) or ?taxiId= (a driver's)
  GET  /health/notify       liveness / readiness

Each handler reads: parse -> load -> decide (notifications.py) -> persist (store.py) -> respond.
"""

from __future__ import annotations

import json
import time
import traceback
import uuid
from datetime import datetime, timezone

import auth
import notifications as core
import spin_glue
import store
from wit_world import exports

PROBLEMS = {
    400: ("invalid-cloudevent", "Invalid CloudEvent"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    422: ("invalid-field", "Invalid field"),
    500: ("internal", "Internal error"),
}


class Refused(Exception):
    """An answer other than success: becomes a problem+json body."""

    def __init__(self, status: int, detail: str, field: str | None = None, allow: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.field, self.allow = status, detail, field, allow


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out) -> None:
        correlation = str(uuid.uuid4())
        method = "?"
        try:
            req = spin_glue.read_request(request)
            method = req.method
            correlation = _correlation(req.headers) or correlation
            status, headers, body = route(req)
        except spin_glue.TooLarge:
            status, headers, body = problem(Refused(413, f"request body over {spin_glue.MAX_BODY_BYTES} bytes"), correlation)
        except Refused as r:
            spin_glue.log(correlation, f"refused {r.status}: {r.detail}")
            status, headers, body = problem(r, correlation)
        except Exception:
            spin_glue.log(correlation, "internal error: " + traceback.format_exc())
            status, headers, body = problem(Refused(500, "the request could not be completed; it is safe to retry"), correlation)
        if method == "HEAD":
            body = b""
        spin_glue.send(response_out, status, [*headers, (spin_glue.CORRELATION_HEADER, correlation)], body)


def route(req: spin_glue.Request):
    segments = [s for s in req.path.split("/") if s]
    if segments == ["events", "notify"]:
        only(req, "POST")
        return receive_event(req)
    if segments == ["notifications"]:
        only(req, "GET", "HEAD")
        return list_notifications(req)
    if segments == ["health", "notify"]:
        only(req, "GET", "HEAD")
        store.open_db()
        return spin_glue.json_body(200, {"status": "ok", "component": core.COMPONENT}, [])
    raise Refused(404, f"no route for {req.path}")


def receive_event(req: spin_glue.Request):
    """One CloudEvent: inbox row, ride facts and notifications in one transaction; a
    duplicate changes nothing. 204 with `htaxi-outcome: applied | duplicate`."""
    received_at = datetime.now(timezone.utc)
    try:
        event = core.read_event(core.decode_cloudevent(req.headers, req.body), received_at)
    except core.Poison as p:
        raise Refused(400, str(p)) from None
    ride = core.ride_of(event)
    notes = core.decide(event)

    def persist(tx):
        if not store.record_delivery(tx, event, core.format_time(received_at)):
            return "duplicate"
        if ride is not None:
            store.save_ride(tx, ride)
        for n in notes:
            store.save_notification(tx, n)
        return "applied"

    outcome = store.open_db().transaction(persist)
    spin_glue.log(_correlation(req.headers) or "-", f"{event.type} {event.id}: {outcome}")
    return 204, [("htaxi-outcome", outcome)], b""


def list_notifications(req: spin_glue.Request):
    principal = authenticate(req)
    try:
        asked = core.recipient(req.query) if principal.role == auth.OPERATOR or _names_recipient(req.query) else None
    except core.BadQuery as b:
        raise Refused(422, f"{b.field}: {b.reason}", field=b.field) from None
    try:
        audience, key = auth.listed(principal, (asked.audience, asked.key) if asked else None)
    except auth.Forbidden as f:
        raise Refused(403, str(f)) from None
    rows = store.notifications_for(store.open_db(), core.Recipient(audience, key))
    return spin_glue.json_body(200, [core.view(n, ride, seq) for n, ride, seq in rows], [])


def authenticate(req: spin_glue.Request) -> auth.Principal:
    """The caller's verified principal (401 without one), by the auth_* variables."""
    try:
        token = auth.bearer(req.headers.get("authorization"))
        keys = auth.keys_from_jwks(spin_glue.variable("auth_jwks"))
        policy = auth.Policy(spin_glue.variable("auth_issuer"), spin_glue.variable("auth_audience"),
                             int(spin_glue.variable("auth_leeway_secs")))
        principal = auth.verify(token, keys, policy, int(time.time()))
    except auth.Unauthorized as u:
        raise Refused(401, str(u)) from None
    return principal


def _names_recipient(query: dict[str, list[str]]) -> bool:
    return "phoneNumber" in query or "taxiId" in query


def only(req: spin_glue.Request, *methods: str) -> None:
    if req.method not in methods:
        raise Refused(405, "allowed methods: " + ", ".join(methods), allow=", ".join(methods))


def problem(r: Refused, correlation: str):
    slug, title = PROBLEMS[r.status]
    body = {"type": f"https://htaxi.dev/problems/{slug}", "title": title, "status": r.status,
            "detail": r.detail, "correlationId": correlation}
    if r.field:
        body["field"] = r.field
    headers = [("content-type", "application/problem+json")]
    if r.status == 401:
        headers.append(("www-authenticate", 'Bearer realm="htaxi"'))
    if r.allow:
        headers.append(("allow", r.allow))
    return r.status, headers, json.dumps(body, ensure_ascii=False).encode()


def _correlation(headers: dict[str, str]) -> str | None:
    """The ride's correlation id: X-Correlation-Id, else the event's `ce-correlationid`."""
    for name in (spin_glue.CORRELATION_HEADER, "ce-correlationid"):
        value = headers.get(name, "")
        if 0 < len(value) <= 128 and all(c.isalnum() or c in "._:-" for c in value):
            return value
    return None
