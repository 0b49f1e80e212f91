"""The live status page: server totals, each worker's numbers and the most requested paths, as JSON or as
the Prometheus text exposition format (0.0.4), for the client addresses status_allow lists; and the
liveness and readiness probes (health_path, ready_path).

Pure: it turns a stats snapshot and a parsed request into a Reply; it never touches sockets.
"""

import json
import os
import time
from urllib.parse import parse_qs

from oserver import __version__
from oserver.http.parser import METHODS_SERVED
from oserver.http.realip import Networks
from oserver.http.response import ALLOW_FIELD, Reply, error_reply

JSON_TYPE = "application/json"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROMETHEUS_ACCEPTS = ("text/plain", "application/openmetrics-text")
FORMATS = ("json", "prometheus")


def requested_format(request):
    """"json" or "prometheus" from ?format=, else from Accept; None for an unknown ?format= value."""
    formats = parse_qs(request.query).get("format")
    if formats:
        return formats[-1] if formats[-1] in FORMATS else None
    accept = request.headers.get("accept", "")
    if JSON_TYPE not in accept and any(media in accept for media in PROMETHEUS_ACCEPTS):
        return "prometheus"
    return "json"


# Each worker's gauges, summed for the server: connections reading or sending (active) and waiting (idle),
# threads running mounted code (busy_threads) and requests waiting for one (queued).
WORKER_GAUGES = ("active", "idle", "busy_threads", "queued")


def status_document(snapshot, answered_by):
    """The status as plain data: server totals, one entry per live worker, the most requested paths."""
    now = time.time()
    workers = [worker_document(worker, now) for worker in snapshot["workers"]]
    server = {"version": __version__, "uptime_seconds": round(now - snapshot["started"], 3),
              "generation": max((w["generation"] for w in workers), default=0), "workers": len(workers),
              **snapshot["totals"],
              **{gauge: sum(w[gauge] for w in workers) for gauge in WORKER_GAUGES}}
    return {"server": server, "workers": workers, "answered_by": answered_by,
            "top_paths": [{"path": path, "hits": hits} for path, hits in snapshot["top_paths"]]}


def worker_document(worker, now):
    heartbeat_age = time.monotonic() - worker["heartbeat"]
    return {"pid": worker["pid"], "generation": worker["generation"],
            "uptime_seconds": round(now - worker["started"], 3),
            "heartbeat_age_seconds": round(heartbeat_age, 3), "requests": worker["requests"],
            "bytes_sent": worker["bytes_sent"], **{gauge: worker[gauge] for gauge in WORKER_GAUGES},
            "responses": worker["responses"], "limited": worker["limited"], "tls_handshakes": worker["tls_handshakes"]}


def render_json(document):
    return json.dumps(document, indent=1).encode() + b"\n"


# ---------------------------------------------------------------- Prometheus text exposition format

def label_value(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def sample(name, labels, value):
    if labels:
        name += "{" + ",".join(f'{key}="{label_value(v)}"' for key, v in labels.items()) + "}"
    return f"{name} {value}"


def metric(name, kind, text, samples):
    """One metric family: HELP and TYPE lines, then its samples, given as (labels, value) pairs."""
    lines = [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
    lines.extend(sample(name, labels, value) for labels, value in samples)
    return lines


def by_class(labels, responses):
    return [({**labels, "class": name}, n) for name, n in responses.items()]


def by_result(labels, handshakes):
    return [({**labels, "result": name}, n) for name, n in handshakes.items()]


def by_state(labels, counts):
    return [({**labels, "state": state}, counts[state]) for state in ("active", "idle")]


def render_prometheus(document):
    server = document["server"]
    workers = [(w, {"pid": w["pid"], "generation": w["generation"]}) for w in document["workers"]]
    lines = [
        *metric("oserver_info", "gauge", "Server version.", [({"version": server["version"]}, 1)]),
        *metric("oserver_uptime_seconds", "gauge", "Seconds since the master started.",
                [({}, server["uptime_seconds"])]),
        *metric("oserver_generation", "gauge", "Newest worker generation (reloads).", [({}, server["generation"])]),
        *metric("oserver_workers", "gauge", "Worker processes running.", [({}, server["workers"])]),
        *metric("oserver_requests_total", "counter", "Responses completed or aborted, all workers.",
                [({}, server["requests"])]),
        *metric("oserver_sent_bytes_total", "counter", "Bytes sent (heads and bodies), all workers.",
                [({}, server["bytes_sent"])]),
        *metric("oserver_responses_total", "counter", "Responses by status class, all workers.",
                by_class({}, server["responses"])),
        *metric("oserver_connections", "gauge", "Open client connections by state, all workers.",
                by_state({}, server)),
        *metric("oserver_tls_handshakes_total", "counter", "TLS handshakes by result (full, resumed, failed), "
                "all workers.", by_result({}, server["tls_handshakes"])),
        *metric("oserver_threads_busy", "gauge", "Threads running mounted code, all workers.",
                [({}, server["busy_threads"])]),
        *metric("oserver_requests_queued", "gauge", "Requests for mounted code waiting for a thread, all workers.",
                [({}, server["queued"])]),
        *metric("oserver_limited_total", "counter", "Connections (limit_conn_per_ip) and requests "
                "(limit_req_per_ip) refused by the per-client limits, all workers.",
                [({"limit": "conn"}, server["limited"]["conn_refused"]),
                 ({"limit": "req"}, server["limited"]["req_refused"])]),
        *metric("oserver_limit_untracked_total", "counter", "Clients let through uncounted: their set of the "
                "per-client table was full.", [({}, server["limited"]["untracked"])]),
        *metric("oserver_worker_uptime_seconds", "gauge", "Seconds since the worker started.",
                [(labels, w["uptime_seconds"]) for w, labels in workers]),
        *metric("oserver_worker_requests_total", "counter", "Responses completed or aborted by this worker.",
                [(labels, w["requests"]) for w, labels in workers]),
        *metric("oserver_worker_sent_bytes_total", "counter", "Bytes sent by this worker.",
                [(labels, w["bytes_sent"]) for w, labels in workers]),
        *metric("oserver_worker_responses_total", "counter", "Responses by status class, by this worker.",
                [s for w, labels in workers for s in by_class(labels, w["responses"])]),
        *metric("oserver_worker_connections", "gauge", "Open client connections of this worker by state.",
                [s for w, labels in workers for s in by_state(labels, w)]),
        *metric("oserver_worker_tls_handshakes_total", "counter", "TLS handshakes of this worker by result.",
                [s for w, labels in workers for s in by_result(labels, w["tls_handshakes"])]),
        *metric("oserver_worker_threads_busy", "gauge", "Threads of this worker running mounted code.",
                [(labels, w["busy_threads"]) for w, labels in workers]),
        *metric("oserver_worker_requests_queued", "gauge", "Requests waiting for a thread of this worker.",
                [(labels, w["queued"]) for w, labels in workers]),
        *metric("oserver_path_hits_total", "counter", "Requests for the most requested paths.",
                [({"path": p["path"]}, p["hits"]) for p in document["top_paths"]]),
    ]
    return ("\n".join(lines) + "\n").encode()


RENDERERS = {"json": (render_json, JSON_TYPE), "prometheus": (render_prometheus, PROMETHEUS_TYPE)}


class StatusPage:
    """Answers requests for status_path from the shared stats, as read by one worker's stats slot."""

    def __init__(self, config, slot):
        self.slot = slot
        self.allowed = Networks(config.status_allow)

    def respond(self, request, client_address):
        if not self.allowed.allows(client_address):
            return error_reply(403)
        if request.method not in METHODS_SERVED:
            return error_reply(405, ALLOW_FIELD)
        fmt = requested_format(request)
        if fmt is None:
            return error_reply(400)
        render, content_type = RENDERERS[fmt]
        body = render(status_document(self.slot.snapshot(), os.getpid()))
        fields = f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nCache-Control: no-store\r\n"
        return Reply(200, fields.encode(), body)


def probe_reply(status, body):
    fields = b"Content-Type: text/plain\r\nContent-Length: %d\r\nCache-Control: no-store\r\n" % len(body)
    return Reply(status, fields, body)


HEALTH_REPLY = probe_reply(200, b"ok\n")
READY_REPLIES = {True: HEALTH_REPLY, False: probe_reply(503, b"not ready: stopping\n")}


def health_reply(request):
    """The liveness probe (health_path): 200 "ok" from any worker whose loop answers, for any client."""
    if request.method not in METHODS_SERVED:
        return error_reply(405, ALLOW_FIELD)
    return HEALTH_REPLY


def ready_reply(request, ready):
    """The readiness probe (ready_path): 200 "ok" while the instance takes new work, else 503."""
    if request.method not in METHODS_SERVED:
        return error_reply(405, ALLOW_FIELD)
    return READY_REPLIES[ready]
