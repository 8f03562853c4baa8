"""Encode CloudEvents with the official Python SDK (`cloudevents` 2.2.0, its v1 API; pinned
in functions/notify/requirements.txt) for tests/e2e/tests/contract.rs.

stdin: a JSON list of {"mode": "binary" | "structured", "attributes": {...}, "data": {...}}.
stdout: a JSON list of {"headers": {...}, "body": "<utf-8 text>"}, exactly what the SDK's
`to_binary` / `to_structured` produce (a team using the SDK would POST these as they are).
"""

import json
import sys

from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent


def encode(item: dict) -> dict:
    event = CloudEvent(item["attributes"], item["data"])
    headers, body = (to_binary if item["mode"] == "binary" else to_structured)(event)
    return {"headers": dict(headers), "body": body.decode("utf-8")}


if __name__ == "__main__":
    json.dump([encode(item) for item in json.load(sys.stdin)], sys.stdout, ensure_ascii=False)
