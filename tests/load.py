"""Load for tests: client threads fetching paths over keep-alive sessions until stopped, with every failure
counted (an exception, a non-2xx status, a body other than the expected one) and its error kept."""

import threading
import time

import requests

REQUEST_TIMEOUT = 10.0
POLL = 0.02


class Load:
    """`clients` threads, client i fetching paths[i % len(paths)] from `url` again and again; `expected` maps a
    path to its body (fetched once at start when not given). A context manager: started on entry, stopped on
    exit. `verify` is requests' (a CA bundle for a TLS url)."""

    def __init__(self, url, paths, clients, expected=None, verify=True):
        self.url = url
        self.paths = paths
        self.verify = verify
        self.expected = expected or {path: requests.get(url + path, timeout=REQUEST_TIMEOUT, verify=verify).content
                                     for path in paths}
        self.stopping = threading.Event()
        self.counts = [[0, 0, 0] for _ in range(clients)]  # per client: sent, failed, non-2xx
        self.errors = []
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(clients)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(REQUEST_TIMEOUT * 2)

    def client(self, number):
        path = self.paths[number % len(self.paths)]
        counts = self.counts[number]
        with requests.Session() as session:
            while not self.stopping.is_set():
                counts[0] += 1
                try:  # verify per request: a session's own is overridden by $REQUESTS_CA_BUNDLE
                    response = session.get(self.url + path, timeout=REQUEST_TIMEOUT, verify=self.verify)
                except requests.RequestException as e:
                    counts[1] += 1
                    self.errors.append(repr(e))
                    continue
                if not 200 <= response.status_code < 300:
                    counts[2] += 1
                    self.errors.append(f"{response.status_code} for {path}")
                elif response.content != self.expected[path]:
                    counts[1] += 1
                    self.errors.append(f"wrong body for {path}")

    @property
    def sent(self):
        return sum(c[0] for c in self.counts)

    @property
    def failed(self):
        return sum(c[1] for c in self.counts)

    @property
    def non_2xx(self):
        return sum(c[2] for c in self.counts)

    def flows(self, requests_more, timeout=30.0):
        """Wait until `requests_more` more requests have been sent (the load goes on through whatever happened)."""
        floor = self.sent + requests_more
        deadline = time.monotonic() + timeout
        while self.sent < floor:
            assert time.monotonic() < deadline, f"load stalled: {self.sent} requests sent, waiting for {floor}"
            time.sleep(POLL)

    def summary(self):
        return f"{len(self.threads)} clients, {self.sent} requests, {self.failed} failed, {self.non_2xx} non-2xx"
