"""notify's pure core: which CloudEvents notify takes, what they must carry, who is told
what, and the words they read. No WIT bindings, SQL, clock or I/O in here: app.py passes
the time of receipt in, and the tests run on plain CPython (pytest).

The contract is docs/events/ (AsyncAPI + one JSON Schema per event's data). notify accepts
exactly what it allows for the events it reads: binary mode without Content-Type whose body
is JSON is JSON, a missing `...At` in data falls back to the `time` attribute and then to the
time of receipt, unknown fields are ignored, anything else is poison (400).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

COMPONENT = "notify"

# The CloudEvent types notify subscribes to (one Trigger each under knative/base/eventing/),
# with the data field that says when the fact happened.
PAYMENT_APPROVED = "htaxi.PaymentApproved"
PAYMENT_REJECTED = "htaxi.PaymentRejected"
PAYMENT_REFUNDED = "htaxi.PaymentRefunded"
TAXI_ALLOCATED = "htaxi.TaxiAllocated"
ALLOCATION_FAILED = "htaxi.AllocationFailed"
RIDE_STARTED = "htaxi.RideStarted"
RIDE_COMPLETED = "htaxi.RideCompleted"

TIME_FIELD = {
    PAYMENT_APPROVED: "approvedAt",
    PAYMENT_REJECTED: "rejectedAt",
    PAYMENT_REFUNDED: "refundedAt",
    TAXI_ALLOCATED: "allocatedAt",
    ALLOCATION_FAILED: "failedAt",
    RIDE_STARTED: "startedAt",
    RIDE_COMPLETED: "completedAt",
}

RIDER = "rider"
DRIVER = "driver"

MAX_MONEY = 10_000_000


class Poison(Exception):
    """The request is not an event notify can use: answered 400, never retried."""


class BadQuery(Exception):
    """A query the API does not take: answered 422 naming the parameter."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# ------------------------------------------------------------------ CloudEvents (HTTP binding)

@dataclass(frozen=True)
class Envelope:
    """The CloudEvent attributes notify uses, and its JSON data."""

    id: str
    type: str
    source: str
    subject: Optional[str]
    time: Optional[str]
    correlation_id: Optional[str]
    data: Any


REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")


def decode_cloudevent(headers: dict[str, str], body: bytes) -> Envelope:
    """Decode binary mode (`ce-*` headers) or structured mode (`application/cloudevents+json`).

    `headers` has lower-case names. Raises Poison for anything the HTTP binding refuses."""
    content_type = headers.get("content-type", "")
    essence = content_type.split(";")[0].strip().lower()
    if essence == "application/cloudevents+json":
        doc = _json(body, "a structured-mode CloudEvent must be one JSON object")
        if not isinstance(doc, dict):
            raise Poison("a structured-mode CloudEvent must be one JSON object")
        attrs = {k: v for k, v in doc.items() if k not in ("data", "data_base64")}
        dct = attrs.get("datacontenttype")
        if dct is not None and not _is_json_type(str(dct)):
            raise Poison("CloudEvent data must be JSON (datacontenttype application/json)")
        if "data" in doc:
            data = doc["data"]
        elif isinstance(doc.get("data_base64"), str):
            try:
                raw = base64.b64decode(doc["data_base64"], validate=True)
            except ValueError:
                raise Poison("CloudEvent data_base64 is not base64") from None
            data = _json(raw, "CloudEvent data must be JSON (datacontenttype application/json)")
        else:
            raise Poison("CloudEvent attribute data is required")
    else:
        if "ce-specversion" not in headers:
            raise Poison("not a CloudEvent: no ce-specversion header and not application/cloudevents+json")
        attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        # Binary mode: Content-Type is the datacontenttype. Absent, a JSON body is JSON
        # (that is what the CloudEvents SDKs send for a dict).
        if essence and not _is_json_type(essence):
            raise Poison("CloudEvent data must be JSON (datacontenttype application/json)")
        if not body:
            raise Poison("CloudEvent attribute data is required")
        data = _json(body, "CloudEvent data must be JSON (datacontenttype application/json)")
    for name in REQUIRED_ATTRIBUTES:
        value = attrs.get(name)
        if not isinstance(value, str) or not value:
            raise Poison(f"CloudEvent attribute {name} is required")
    if attrs["specversion"] != "1.0":
        raise Poison(f"unsupported CloudEvents specversion {attrs['specversion']!r}")
    time = attrs.get("time")
    if time is not None and parse_time(time) is None:
        raise Poison("CloudEvent attribute time must be an RFC 3339 timestamp")
    return Envelope(
        id=attrs["id"],
        type=attrs["type"],
        source=attrs["source"],
        subject=_opt_str(attrs.get("subject")),
        time=time,
        correlation_id=_opt_str(attrs.get("correlationid")),
        data=data,
    )


def _is_json_type(essence: str) -> bool:
    essence = essence.split(";")[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json")


def _json(body: bytes, why: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Poison(why) from None


def _opt_str(v: Any) -> Optional[str]:
    return v if isinstance(v, str) and v else None


# Compiled at import, so componentize-py's snapshot holds them: a pattern compiled on first use
# is compiled again by every request, each being a fresh instance of that snapshot.
_RFC3339_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}")
_BEYOND_MICROSECONDS = re.compile(r"(\.\d{6})\d+")


def parse_time(raw: Any) -> Optional[datetime]:
    """An RFC 3339 timestamp (with offset or Z) as an aware UTC datetime, or None."""
    if not isinstance(raw, str) or not _RFC3339_PREFIX.match(raw):
        return None
    text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    # Python before 3.11 takes at most 6 fractional digits; RFC 3339 allows more.
    text = _BEYOND_MICROSECONDS.sub(r"\1", text)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
        return None
    return t.astimezone(timezone.utc)


def format_time(t: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix (sorts as text)."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


# ------------------------------------------------------------------ the events notify reads

@dataclass(frozen=True)
class Event:
    """One event of the catalogue that notify reads, checked against its schema."""

    type: str
    source: str
    id: str
    grab_id: str
    occurred_at: str
    data: dict


def _uuid(data: dict, field: str) -> str:
    v = data.get(field)
    try:
        if isinstance(v, str) and len(v) == 36:
            return str(uuid.UUID(v))
    except ValueError:
        pass
    raise Poison(f"data.{field} must be a UUID")


def _text(data: dict, field: str) -> str:
    v = data.get(field)
    if not isinstance(v, str):
        raise Poison(f"data.{field} must be a string")
    return v


def _integer(data: dict, field: str, low: int, high: Optional[int]) -> int:
    v = data.get(field)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise Poison(f"data.{field} must be a whole number {bounds}")
    return v


def _phone(data: dict, field: str) -> str:
    v = data.get(field)
    if isinstance(v, str):
        s = v.strip()
        body = s[1:] if s.startswith("+") else s
        digits = sum(c.isdigit() for c in body)
        if body and all(c in "0123456789- " for c in body) and not body.startswith("-") and 9 <= digits <= 15:
            return s
    raise Poison(f"data.{field} must be a phone number like 010-1234-5678")


def _point(data: dict, field: str) -> dict:
    p = data.get(field)
    if not isinstance(p, dict):
        raise Poison(f"data.{field} must be a point {{lat, lng, name?}}")
    for axis, limit in (("lat", 90), ("lng", 180)):
        v = p.get(axis)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not -limit <= v <= limit:
            raise Poison(f"data.{field}.{axis} must be a number between -{limit} and {limit}")
    name = p.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise Poison(f"data.{field}.name must be a string of at most 200 characters")
    out = {"lat": float(p["lat"]), "lng": float(p["lng"])}
    if isinstance(name, str) and name.strip():
        out["name"] = name.strip()
    return out


# What each type's data must hold (docs/events/schemas/<Name>.json), as (field, reader).
FIELDS = {
    PAYMENT_APPROVED: (("paymentId", _uuid), ("grabId", _uuid), ("amount", lambda d, f: _integer(d, f, 1, MAX_MONEY)),
                       ("phoneNumber", _phone), ("startingPoint", _point), ("destination", _point)),
    PAYMENT_REJECTED: (("grabId", _uuid), ("reason", _text), ("phoneNumber", _phone),
                       ("amount", lambda d, f: _integer(d, f, 1, MAX_MONEY))),
    PAYMENT_REFUNDED: (("paymentId", _uuid), ("grabId", _uuid), ("amount", lambda d, f: _integer(d, f, 1, MAX_MONEY)),
                       ("reason", _text)),
    TAXI_ALLOCATED: (("allocationId", _uuid), ("grabId", _uuid), ("taxiId", _uuid), ("taxiNum", _text),
                     ("distanceMeters", lambda d, f: _integer(d, f, 0, None))),
    ALLOCATION_FAILED: (("grabId", _uuid), ("reason", _text)),
    RIDE_STARTED: (("allocationId", _uuid), ("grabId", _uuid), ("taxiId", _uuid), ("taxiNum", _text)),
    RIDE_COMPLETED: (("allocationId", _uuid), ("grabId", _uuid), ("taxiId", _uuid), ("taxiNum", _text)),
}


def read_event(env: Envelope, received_at: datetime) -> Event:
    """Check an envelope against the schema of its type and keep the fields notify uses.

    Raises Poison for a type notify does not take, a missing or invalid field, an invalid
    timestamp, or a `subject` naming another ride than `data.grabId`."""
    fields = FIELDS.get(env.type)
    if fields is None:
        raise Poison(f"notify does not take events of type {env.type!r}")
    if not isinstance(env.data, dict):
        raise Poison(f"data of {env.type} must be a JSON object")
    data = {name: reader(env.data, name) for name, reader in fields}
    time_field = TIME_FIELD[env.type]
    if time_field in env.data:
        occurred = parse_time(env.data[time_field])
        if occurred is None:
            raise Poison(f"data.{time_field} must be an RFC 3339 timestamp")
    else:
        occurred = parse_time(env.time) if env.time is not None else None
        occurred = occurred or received_at
    if env.subject is not None and env.subject != data["grabId"]:
        raise Poison(f"subject {env.subject!r} does not match data.grabId {data['grabId']}")
    return Event(env.type, env.source, env.id, data["grabId"], format_time(occurred), data)


# ------------------------------------------------------------------ decisions

@dataclass(frozen=True)
class Ride:
    """What notify remembers of a ride from PaymentApproved / PaymentRejected: who to tell,
    where the pickup is and what the fare is. Either may arrive after the others."""

    grab_id: str
    phone_number: str
    amount: int
    starting_point: Optional[dict]
    destination: Optional[dict]


@dataclass(frozen=True)
class Notification:
    """One message to one person: the rider of a ride, or the driver of a taxi."""

    source: str
    event_id: str
    audience: str
    grab_id: str
    taxi_id: Optional[str]
    kind: str
    occurred_at: str
    facts: dict


def ride_of(event: Event) -> Optional[Ride]:
    """The ride facts an event carries (payment events name the rider), if any."""
    d = event.data
    if event.type == PAYMENT_APPROVED:
        return Ride(d["grabId"], d["phoneNumber"], d["amount"], d["startingPoint"], d["destination"])
    if event.type == PAYMENT_REJECTED:
        return Ride(d["grabId"], d["phoneNumber"], d["amount"], None, None)
    return None


def decide(event: Event) -> list[Notification]:
    """Who is told what about one event. PaymentApproved tells nobody (the rider saw the 201);
    TaxiAllocated tells the rider and the driver; every other type tells the rider."""

    def note(audience: str, kind: str, taxi_id: Optional[str] = None, **facts: Any) -> Notification:
        return Notification(event.source, event.id, audience, event.grab_id, taxi_id, kind,
                            event.occurred_at, facts)

    d = event.data
    if event.type == TAXI_ALLOCATED:
        return [
            note(RIDER, "TaxiAllocated", d["taxiId"], taxiNum=d["taxiNum"], distanceMeters=d["distanceMeters"]),
            note(DRIVER, "PickupAssigned", d["taxiId"], allocationId=d["allocationId"]),
        ]
    if event.type == RIDE_STARTED:
        return [note(RIDER, "RideStarted", d["taxiId"], taxiNum=d["taxiNum"])]
    if event.type == RIDE_COMPLETED:
        return [note(RIDER, "RideCompleted", d["taxiId"], taxiNum=d["taxiNum"])]
    if event.type == ALLOCATION_FAILED:
        return [note(RIDER, "AllocationFailed", reason=d["reason"])]
    if event.type == PAYMENT_REJECTED:
        return [note(RIDER, "PaymentRejected", reason=d["reason"], amount=d["amount"])]
    if event.type == PAYMENT_REFUNDED:
        return [note(RIDER, "PaymentRefunded", reason=d["reason"], amount=d["amount"])]
    return []


# ------------------------------------------------------------------ message text

def won(amount: Optional[int]) -> str:
    """15000 -> '15,000 KRW'."""
    return f"{amount:,} KRW" if amount is not None else "the fare"


def distance(meters: int) -> str:
    """850 -> '850 m', 1234 -> '1.2 km'."""
    return f"{meters} m" if meters < 1000 else f"{meters / 1000:.1f} km"


def place(point: Optional[dict]) -> str:
    """A point in words: its name, else its coordinates."""
    if not point:
        return "the pickup point (details follow)"
    if point.get("name"):
        return point["name"]
    return f"{point['lat']:.5f}, {point['lng']:.5f}"


def message(n: Notification, ride: Optional[Ride]) -> str:
    """The text a person reads. Rendered when listed, from the notification and whatever is
    known of the ride then, so an event that overtook PaymentApproved reads the same once
    PaymentApproved has arrived."""
    f = n.facts
    fare = ride.amount if ride else None
    pickup = ride.starting_point if ride else None
    if n.kind == "TaxiAllocated":
        cost = f" Fare: {won(fare)}, as quoted." if fare is not None else ""
        return f"Your taxi {f['taxiNum']} is on its way, {distance(f['distanceMeters'])} from you.{cost}"
    if n.kind == "PickupAssigned":
        dest = f" and take them to {place(ride.destination)}" if ride and ride.destination else ""
        return f"New pickup: collect the rider at {place(pickup)}{dest}."
    if n.kind == "RideStarted":
        return f"Your ride in {f['taxiNum']} has started."
    if n.kind == "RideCompleted":
        return f"Receipt: your ride in {f['taxiNum']} is complete. Fare charged: {won(fare)}. Thank you for riding with H Taxi."
    if n.kind == "AllocationFailed":
        return f"Sorry, no taxi was available ({f['reason']}). Your payment will be refunded."
    if n.kind == "PaymentRejected":
        return f"Your payment of {won(f['amount'])} was declined ({f['reason']}). No taxi was requested."
    if n.kind == "PaymentRefunded":
        return f"{won(f['amount'])} has been refunded to you ({f['reason']})."
    raise ValueError(f"unknown notification kind {n.kind}")


def view(n: Notification, ride: Optional[Ride], seq: int) -> dict:
    """The JSON a client gets for one notification."""
    out = {
        "notificationId": f"{n.event_id}/{n.audience}",
        "audience": n.audience,
        "kind": n.kind,
        "grabId": n.grab_id,
        "message": message(n, ride),
        "occurredAt": n.occurred_at,
        "event": {"source": n.source, "id": n.event_id},
    }
    if n.audience == RIDER and ride is not None:
        out["phoneNumber"] = ride.phone_number
    if n.taxi_id is not None:
        out["taxiId"] = n.taxi_id
    return out


# ------------------------------------------------------------------ queries

@dataclass(frozen=True)
class Recipient:
    """Whose notifications a GET lists: a rider by phone, or a driver by taxi."""

    audience: str
    key: str


def recipient(query: dict[str, list[str]]) -> Recipient:
    """`?phoneNumber=` or `?taxiId=`, exactly one, once. Raises BadQuery."""
    known = {"phoneNumber", "taxiId"}
    given = [k for k in query if k in known]
    if len(given) != 1:
        raise BadQuery("phoneNumber", "give exactly one of phoneNumber or taxiId")
    name = given[0]
    values = query[name]
    if len(values) != 1:
        raise BadQuery(name, "give it once")
    try:
        if name == "phoneNumber":
            return Recipient(RIDER, _phone({name: values[0]}, name))
        return Recipient(DRIVER, _uuid({name: values[0]}, name))
    except Poison:
        what = "a phone number like 010-1234-5678" if name == "phoneNumber" else "a UUID"
        raise BadQuery(name, f"must be {what}") from None
