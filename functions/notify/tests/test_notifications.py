"""notify's pure core, given/when/then over plain CloudEvents (no Wasm needed)."""

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import notifications as core  # noqa: E402

GRAB = "7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11"
TAXI = "22222222-3333-4444-8555-666666666666"
ALLOC = "33333333-4444-4555-8666-777777777777"
PAYMENT = "11111111-2222-4333-8444-555555555555"
RECEIVED = datetime(2026, 11, 25, 10, 5, tzinfo=timezone.utc)


def data_of(event_type):
    return {
        core.PAYMENT_APPROVED: {"paymentId": PAYMENT, "grabId": GRAB, "amount": 15000, "phoneNumber": "010-1234-5678",
                                "startingPoint": {"lat": 37.5547, "lng": 126.9707, "name": "Seoul Station"},
                                "destination": {"lat": 37.4979, "lng": 127.0276, "name": "Gangnam Station"},
                                "approvedAt": "2026-11-25T10:00:01Z"},
        core.PAYMENT_REJECTED: {"grabId": GRAB, "reason": "over the limit", "phoneNumber": "010-1234-5678",
                                "amount": 400000},
        core.PAYMENT_REFUNDED: {"paymentId": PAYMENT, "grabId": GRAB, "amount": 15000, "reason": "grab cancelled"},
        core.TAXI_ALLOCATED: {"allocationId": ALLOC, "grabId": GRAB, "taxiId": TAXI, "taxiNum": "서울32저4703",
                              "distanceMeters": 850, "allocatedAt": "2026-11-25T10:00:02Z"},
        core.ALLOCATION_FAILED: {"grabId": GRAB, "reason": "no available taxi within 10000 m"},
        core.RIDE_STARTED: {"allocationId": ALLOC, "grabId": GRAB, "taxiId": TAXI, "taxiNum": "서울32저4703"},
        core.RIDE_COMPLETED: {"allocationId": ALLOC, "grabId": GRAB, "taxiId": TAXI, "taxiNum": "서울32저4703",
                              "completedAt": "2026-11-25T10:30:00+09:00"},
    }[event_type]


def binary(event_type, data, content_type="application/json", **extra):
    headers = {"ce-specversion": "1.0", "ce-id": f"{event_type[6:]}:{GRAB}", "ce-type": event_type,
               "ce-source": "/htaxi/test", "ce-subject": GRAB, **extra}
    if content_type:
        headers["content-type"] = content_type
    return headers, json.dumps(data).encode()


def event(event_type, data=None, **extra):
    headers, body = binary(event_type, data if data is not None else data_of(event_type), **extra)
    return core.read_event(core.decode_cloudevent(headers, body), RECEIVED)


# ---------------------------------------------------------------- decoding


def test_binary_mode_without_a_content_type_reads_a_json_body_as_json():
    headers, body = binary(core.RIDE_STARTED, data_of(core.RIDE_STARTED), content_type=None)
    env = core.decode_cloudevent(headers, body)
    assert env.data["taxiNum"] == "서울32저4703"


def test_binary_mode_with_a_non_json_content_type_is_poison():
    headers, body = binary(core.RIDE_STARTED, data_of(core.RIDE_STARTED), content_type="text/plain")
    with pytest.raises(core.Poison, match="must be JSON"):
        core.decode_cloudevent(headers, body)


def test_structured_mode_reads_attributes_and_data_from_one_document():
    doc = {"specversion": "1.0", "id": "RideStarted:x", "type": core.RIDE_STARTED, "source": "/htaxi/allocate",
           "subject": GRAB, "correlationid": "ride-1", "data": data_of(core.RIDE_STARTED)}
    env = core.decode_cloudevent({"content-type": "application/cloudevents+json; charset=utf-8"},
                                 json.dumps(doc).encode())
    assert (env.id, env.source, env.correlation_id) == ("RideStarted:x", "/htaxi/allocate", "ride-1")


def test_a_request_without_ce_headers_is_poison():
    with pytest.raises(core.Poison, match="not a CloudEvent"):
        core.decode_cloudevent({"content-type": "application/json"}, b"{}")


def test_a_missing_required_attribute_is_poison():
    headers, body = binary(core.RIDE_STARTED, data_of(core.RIDE_STARTED))
    del headers["ce-source"]
    with pytest.raises(core.Poison, match="source is required"):
        core.decode_cloudevent(headers, body)


def test_a_missing_timestamp_falls_back_to_the_time_attribute():
    e = event(core.RIDE_STARTED, **{"ce-time": "2026-11-25T10:10:00Z"})
    assert e.occurred_at == "2026-11-25T10:10:00.000Z"


def test_a_missing_timestamp_and_time_attribute_fall_back_to_the_time_of_receipt():
    assert event(core.RIDE_STARTED).occurred_at == "2026-11-25T10:05:00.000Z"


def test_a_timestamp_in_data_wins_and_is_normalised_to_utc():
    assert event(core.RIDE_COMPLETED, **{"ce-time": "2026-11-25T09:00:00Z"}).occurred_at == "2026-11-25T01:30:00.000Z"


def test_an_invalid_timestamp_is_poison():
    data = {**data_of(core.RIDE_STARTED), "startedAt": "yesterday"}
    with pytest.raises(core.Poison, match="startedAt"):
        event(core.RIDE_STARTED, data)


def test_unknown_extra_fields_are_ignored():
    data = {**data_of(core.TAXI_ALLOCATED), "loyaltyPoints": 12, "startingPoint": "anything"}
    assert event(core.TAXI_ALLOCATED, data).data["taxiNum"] == "서울32저4703"


@pytest.mark.parametrize("field", ["taxiId", "taxiNum", "distanceMeters", "grabId", "allocationId"])
def test_a_missing_required_field_is_poison(field):
    data = dict(data_of(core.TAXI_ALLOCATED))
    del data[field]
    with pytest.raises(core.Poison, match=field):
        event(core.TAXI_ALLOCATED, data)


@pytest.mark.parametrize("field,value", [("distanceMeters", -1), ("distanceMeters", "850"), ("taxiId", "taxi-7"),
                                         ("grabId", 42), ("taxiNum", None)])
def test_a_field_the_schema_forbids_is_poison(field, value):
    data = {**data_of(core.TAXI_ALLOCATED), field: value}
    with pytest.raises(core.Poison):
        event(core.TAXI_ALLOCATED, data)


def test_a_subject_naming_another_ride_is_poison():
    with pytest.raises(core.Poison, match="subject"):
        event(core.RIDE_STARTED, **{"ce-subject": "another"})


def test_an_event_type_notify_does_not_take_is_poison():
    with pytest.raises(core.Poison, match="does not take"):
        event("htaxi.GrabRequested", {"grabId": GRAB})


def test_every_catalogue_field_notify_reads_is_required_by_the_published_schema():
    schemas = Path(__file__).resolve().parents[3] / "docs" / "events" / "schemas"
    for event_type, fields in core.FIELDS.items():
        schema = json.loads((schemas / f"{event_type[6:]}.json").read_text())
        assert {name for name, _ in fields} <= set(schema["required"]), event_type
        assert core.TIME_FIELD[event_type] in schema["properties"]
        assert core.TIME_FIELD[event_type] not in schema["required"]


# ---------------------------------------------------------------- decisions


def test_taxi_allocated_tells_the_rider_the_plate_and_distance_and_the_driver_the_pickup():
    notes = core.decide(event(core.TAXI_ALLOCATED))
    ride = core.ride_of(event(core.PAYMENT_APPROVED))
    rider, driver = notes
    assert (rider.audience, driver.audience) == (core.RIDER, core.DRIVER)
    assert driver.taxi_id == TAXI
    assert core.message(rider, ride) == (
        f"Your taxi 서울32저4703 is on its way, 850 m from you. Fare: {ride.amount:,} KRW, as quoted."
    )
    assert core.message(driver, ride) == "New pickup: collect the rider at Seoul Station and take them to Gangnam Station."


def test_before_the_payment_arrives_the_rider_is_told_the_taxi_without_a_fare():
    rider, _ = core.decide(event(core.TAXI_ALLOCATED))
    assert core.message(rider, None) == "Your taxi 서울32저4703 is on its way, 850 m from you."


def test_a_pickup_that_overtook_the_payment_reads_in_full_once_the_payment_arrives():
    (_, driver) = core.decide(event(core.TAXI_ALLOCATED))
    assert core.message(driver, None) == "New pickup: collect the rider at the pickup point (details follow)."
    assert "Seoul Station" in core.message(driver, core.ride_of(event(core.PAYMENT_APPROVED)))


def test_ride_completed_gives_the_rider_a_receipt_with_the_fare():
    (note,) = core.decide(event(core.RIDE_COMPLETED))
    text = core.message(note, core.ride_of(event(core.PAYMENT_APPROVED)))
    assert text.startswith("Receipt:") and "15,000 KRW" in text


@pytest.mark.parametrize("event_type,words", [
    (core.RIDE_STARTED, "has started"),
    (core.ALLOCATION_FAILED, "no taxi was available"),
    (core.PAYMENT_REJECTED, "400,000 KRW was declined"),
    (core.PAYMENT_REFUNDED, "15,000 KRW has been refunded"),
])
def test_every_other_outcome_tells_the_rider_what_happened(event_type, words):
    (note,) = core.decide(event(event_type))
    assert note.audience == core.RIDER
    assert words in core.message(note, core.ride_of(event(core.PAYMENT_APPROVED)))


def test_payment_approved_tells_nobody_but_names_the_rider():
    e = event(core.PAYMENT_APPROVED)
    assert core.decide(e) == []
    assert core.ride_of(e).phone_number == "010-1234-5678"


def test_payment_rejected_names_the_rider_without_a_pickup():
    ride = core.ride_of(event(core.PAYMENT_REJECTED))
    assert (ride.phone_number, ride.starting_point) == ("010-1234-5678", None)


def test_the_same_event_always_makes_the_same_notifications():
    assert core.decide(event(core.TAXI_ALLOCATED)) == core.decide(event(core.TAXI_ALLOCATED))


# ---------------------------------------------------------------- queries


def test_a_rider_is_found_by_phone_number_and_a_driver_by_taxi():
    assert core.recipient({"phoneNumber": ["010-1234-5678"]}) == core.Recipient(core.RIDER, "010-1234-5678")
    assert core.recipient({"taxiId": [TAXI.upper()]}) == core.Recipient(core.DRIVER, TAXI)


@pytest.mark.parametrize("query,field", [({}, "phoneNumber"), ({"phoneNumber": ["abc"]}, "phoneNumber"),
                                         ({"taxiId": ["7"]}, "taxiId"),
                                         ({"phoneNumber": ["010-1234-5678"], "taxiId": [TAXI]}, "phoneNumber"),
                                         ({"taxiId": [TAXI, TAXI]}, "taxiId")])
def test_a_query_without_exactly_one_valid_recipient_is_refused(query, field):
    with pytest.raises(core.BadQuery) as refused:
        core.recipient(query)
    assert refused.value.field == field


def test_structured_mode_data_base64_is_read_when_it_decodes_to_json():
    import base64
    doc = {"specversion": "1.0", "id": "x", "type": core.RIDE_STARTED, "source": "/s",
           "data_base64": base64.b64encode(json.dumps(data_of(core.RIDE_STARTED)).encode()).decode()}
    env = core.decode_cloudevent({"content-type": "application/cloudevents+json"}, json.dumps(doc).encode())
    assert env.data["grabId"] == GRAB
    doc["data_base64"] = base64.b64encode(b"not json").decode()
    with pytest.raises(core.Poison, match="must be JSON"):
        core.decode_cloudevent({"content-type": "application/cloudevents+json"}, json.dumps(doc).encode())
