"""A mounted handler (the OServer handler API): a tiny JSON API beside the static files.

Mounted with `"/api" = "hello:handle"`: GET /api/hello?name=Ada answers JSON, POST /api/echo echoes a form or
JSON body back, anything else is 404. `handle(request)` returns (status, headers, body).
"""

import json
from urllib.parse import parse_qs

JSON = {"Content-Type": "application/json"}


def handle(request):
    if request.path_info == "/hello":
        name = parse_qs(request.query).get("name", ["world"])[0]
        return 200, JSON, json.dumps({"hello": name}).encode()
    if request.path_info == "/echo":
        if request.method != "POST":
            return 405, {"Allow": "POST"}, b""
        return 200, JSON, json.dumps(echo(request)).encode()
    return 404, JSON, b'{"error": "not found"}'


def echo(request):
    """What a POST carried: its form fields, or its JSON document."""
    body = request.body.read()
    if request.headers.get("content-type", "").startswith("application/json"):
        return {"json": json.loads(body or b"null")}
    return {"form": {key: values[0] for key, values in parse_qs(body.decode("utf-8")).items()}}
