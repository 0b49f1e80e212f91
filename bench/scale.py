#!/usr/bin/env python3
"""Scale check (`make scale`): N concurrent downloads of a 100 GB sparse file, then 10,000 idle connections.

Starts its own OServer on a free loopback port (or targets --url), drives every client from one epoll loop
(no threads), samples each worker's memory from /proc and prints Markdown tables with the goals checked.
Loopback only, bounded in time; it removes the files it made and stops the servers it started.
"""

import argparse
import datetime
import os
import platform
import re
import resource
import select
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.parse

import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from bench import cputime  # noqa: E402
from tests.conftest import START_TIMEOUT, Server  # noqa: E402  (the real-server starter the tests use)

FILE_SIZE = 100 * 10**9  # bytes: the sparse file every download fetches
SMALL_BODY = b"scale check: a normal small file\n"
CLIENT_COUNTS = (1, 10, 100, 1000)
IDLE_CONNECTIONS = 10_000
DOWNLOAD_SECONDS = 6.0  # measured reading time per N
WINDOW = 2.0  # seconds: every client must receive data in every window of this length
LATENCY_PROBES = 20
PROBE_GAP = 0.05  # seconds between latency probes
CLIENT_RCVBUF = 256 * 1024  # a download's TCP window, the same for every client (see --rcvbuf)
READ_SIZE = 1 << 20  # one recv_into per ready socket per poll round, into one preallocated buffer
CONNECT_CONCURRENCY = 256  # connections being set up at once (the listen backlog is 1024)
SETUP_TIMEOUT = 60.0  # seconds allowed to connect all clients / get every response head
RSS_SAMPLE_INTERVAL = 0.5  # seconds between worker memory samples
POLL_INTERVAL = 0.1  # seconds the download loop waits at most for data
STALL_LIMIT = 0.5  # seconds without the download loop running that void the window they fall in
STALL_DEADLINE = 3  # times the planned reading time the judged windows may take in all
REQUEST_TIMEOUT = 10.0
READY_POLL = 0.02  # seconds between looks for the workers of a starting server
STATUS_PATH = "/oserver-scale-status"  # the status page of the servers the tool starts
KEEPALIVE_TIMEOUT = 300  # seconds, for the server the tool starts: idle connections must outlive the check
LOOPBACK = ("127.0.0.1", "::1", "localhost")
LOG_TAIL = 4000  # characters of the server log shown when a phase fails
SPARE_DESCRIPTORS = 64  # the client's own files beside its connections
# goals (issue 8), for -w 2 on this machine
GOAL_FAIRNESS = 0.5
GOAL_WORKER_RSS_MB = 64
GOAL_BYTES_PER_IDLE = 5 * 1024
GOAL_LATENCY_MS = 50

HEAD_END = b"\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
MB = 1e6
TCP_ESTABLISHED = "01"  # the st column of /proc/net/tcp


# ------------------------------------------------------------ the server and its workers

class RunningServer:
    """A server started elsewhere (--url): where it listens and, if given, its master pid."""

    worker_pids = Server.worker_pids

    def __init__(self, url, master_pid):
        parts = urllib.parse.urlsplit(url)
        if parts.hostname not in LOOPBACK:
            raise SystemExit(f"scale: refusing {url}: this tool only loads loopback servers")
        self.host, self.port, self.pid = parts.hostname, parts.port or 80, master_pid


def start_server(root, workers, log_path):
    """A server of our own with every worker serving (each announces itself on the status page once it
    accepts), so that no phase starts while one worker is still coming up."""
    flags = ("--keepalive-timeout", str(KEEPALIVE_TIMEOUT), "--status-path", STATUS_PATH)
    server = Server(root, flags, workers=workers, log_path=log_path)
    try:
        server.wait_ready()
        deadline = time.monotonic() + START_TIMEOUT
        while workers_serving(server) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all {workers} workers came up: {server.log_text()}")
            time.sleep(READY_POLL)
    except BaseException:
        server.stop()
        raise
    return server


def workers_serving(server):
    return requests.get(server.url + STATUS_PATH, timeout=REQUEST_TIMEOUT).json()["server"]["workers"]


def worker_pids(server):
    return server.worker_pids() if server.pid else []


def proc_status_kb(pid, field):
    """A memory figure (kB) from /proc/<pid>/status, 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def socket_owners(pids):
    """{socket inode: pid} for the sockets the given processes hold."""
    owners = {}
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[target[8:-1]] = pid
    return owners


def established_inodes(port):
    """Inodes of the established TCP sockets whose local port is `port` (the server's side of each client).
    A set: /proc/net/tcp is read in pieces, and sockets made or closed meanwhile can repeat a line."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == TCP_ESTABLISHED and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            pass
    return inodes


class WorkerWatch:
    """Every worker's client connections (from /proc/net/tcp) and its peak RSS, sampled."""

    def __init__(self, server):
        self.port = server.port
        self.pids = worker_pids(server)
        self.peak_kb = dict.fromkeys(self.pids, 0)
        self.next_sample = 0.0

    def connections(self):
        owners = socket_owners(self.pids)
        counts = dict.fromkeys(self.pids, 0)
        for inode in established_inodes(self.port):
            pid = owners.get(inode)
            if pid is not None:
                counts[pid] += 1
        return list(counts.values())

    def vanished(self):
        """Workers watched from the start of the phase that are gone now (crashed or killed)."""
        return [pid for pid in self.pids if not proc_status_kb(pid, "VmRSS:")]

    def cpu_seconds(self):
        return [cputime.process_seconds(pid) for pid in self.pids]

    def rss_kb(self):
        return [proc_status_kb(pid, "VmRSS:") for pid in self.pids]

    def sample(self, now):
        if now >= self.next_sample:
            self.next_sample = now + RSS_SAMPLE_INTERVAL
            for pid, kb in zip(self.pids, self.rss_kb()):
                self.peak_kb[pid] = max(self.peak_kb[pid], kb)

    def peaks_mb(self):
        """Per worker: the larger of the sampled VmRSS peak and the kernel's own high-water mark (VmHWM)."""
        return [max(self.peak_kb[pid], proc_status_kb(pid, "VmHWM:")) / 1024 for pid in self.pids]


# ------------------------------------------------------------ client plumbing

def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def get_request(host, path):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: oserver-scale\r\n\r\n".encode()


def connect_all(host, port, count, rcvbuf=0):
    """`count` connected non-blocking sockets, set up with a bounded number of handshakes in flight; a
    non-zero rcvbuf fixes each socket's receive buffer (its TCP window) instead of letting the kernel tune it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = (host, port)
    done, pending = [], {}
    deadline = time.monotonic() + SETUP_TIMEOUT
    with select.epoll() as ep:
        while len(done) < count:
            while len(done) + len(pending) < count and len(pending) < CONNECT_CONCURRENCY:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                if rcvbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.connect_ex(address)
                pending[sock.fileno()] = sock
                ep.register(sock.fileno(), select.EPOLLOUT)
            for fd, _ in ep.poll(1.0):
                sock = pending.pop(fd)
                ep.unregister(fd)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, f"connect to {host}:{port} failed: {os.strerror(error)}")
                done.append(sock)
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(done)} of {count} connections set up in {SETUP_TIMEOUT:.0f}s")
    return done


def response_length(buf):
    """Total length of the complete response at the start of buf (head + Content-Length body), or None."""
    end = buf.find(HEAD_END)
    if end < 0:
        return None
    found = CONTENT_LENGTH.search(buf, 0, end + 2)
    return end + 4 + (int(found.group(1)) if found else 0)


def ask(host, port, path):
    """A new (blocking) connection that made one request and read its whole response, left open for more;
    returns (socket, status line)."""
    sock = socket.create_connection((host, port), timeout=REQUEST_TIMEOUT)
    try:
        sock.sendall(get_request(host, path))
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"connection closed after {len(buf)} bytes of the response")
            buf += data
            length = response_length(buf)
            if length is not None and len(buf) >= length:
                return sock, buf.split(b"\r\n", 1)[0]
    except BaseException:
        sock.close()
        raise


def fetch(host, port, path):
    """One normal request on a new connection; returns (seconds taken, status line)."""
    started = time.perf_counter()
    sock, status = ask(host, port, path)
    sock.close()
    return time.perf_counter() - started, status


# ------------------------------------------------------------ downloads

class DownloadRun:
    """N clients downloading the same file at once, read from one epoll loop; bytes counted per window."""

    def __init__(self, host, port, path, clients, seconds, watch, rcvbuf):
        self.clients = clients
        self.seconds = seconds
        self.watch = watch
        self.windows = max(1, int(seconds / WINDOW))
        self.socks = connect_all(host, port, clients, rcvbuf)
        self.index = {sock.fileno(): i for i, sock in enumerate(self.socks)}
        self.received = [0] * clients
        self.per_window = []  # bytes per client, for each window judged
        self.stalled = 0  # windows not judged: the client itself stalled in them
        self.closed = 0
        self.ep = select.epoll(clients + 1)
        self.buf = bytearray(READ_SIZE)
        request = get_request(host, path)
        for sock in self.socks:
            sock.send(request)
            self.ep.register(sock.fileno(), select.EPOLLIN)

    def close(self):
        self.ep.close()
        for sock in self.socks:
            sock.close()

    def wait_for_heads(self):
        """Read until every client has its response head (a 200); those bytes are not measured."""
        waiting = set(self.index)
        deadline = time.monotonic() + SETUP_TIMEOUT
        view = memoryview(self.buf)
        while waiting and time.monotonic() < deadline:
            for fd, _ in self.ep.poll(1.0):
                n = self.recv(fd)
                if fd in waiting and n:
                    if not view[:13] == b"HTTP/1.1 200 ":
                        raise RuntimeError(f"unexpected response: {bytes(view[:60])!r}")
                    waiting.discard(fd)
            self.watch.sample(time.monotonic())
        return len(waiting)

    def recv(self, fd):
        try:
            n = self.socks[self.index[fd]].recv_into(self.buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            n = 0
        if n == 0:
            self.ep.unregister(fd)
            self.closed += 1
        return n

    def measure(self):
        """Read until `windows` windows of WINDOW seconds have been judged; returns the seconds taken and the
        client's and workers' CPU seconds. A window in which this client itself stalled (its loop did not run
        for STALL_LIMIT, e.g. on an overloaded machine) says nothing about the server: it is counted in
        `stalled` and a new one starts, within STALL_DEADLINE times the planned time."""
        cpu_before = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        workers_before = self.watch.cpu_seconds()
        recv, index, received = self.recv, self.index, self.received
        started = last = window_start = time.monotonic()
        deadline = started + STALL_DEADLINE * self.windows * WINDOW
        window, spoiled = [0] * self.clients, False
        while len(self.per_window) < self.windows and last < deadline:
            events = self.ep.poll(POLL_INTERVAL)
            now = time.monotonic()
            spoiled = spoiled or now - last > STALL_LIMIT
            for fd, _ in events:
                n = recv(fd)
                if n:
                    i = index[fd]
                    received[i] += n
                    window[i] += n
            last = time.monotonic()
            spoiled = spoiled or last - now > STALL_LIMIT
            if last - window_start >= WINDOW:
                if spoiled:
                    self.stalled += 1
                else:
                    self.per_window.append(window)
                window, spoiled, window_start = [0] * self.clients, False, last
            self.watch.sample(last)
        cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu_before
        workers = [after - before for before, after in zip(workers_before, self.watch.cpu_seconds())]
        return last - started, cpu, workers


def run_downloads(server, path, clients, seconds, rcvbuf=CLIENT_RCVBUF):
    watch = WorkerWatch(server)
    run = DownloadRun(server.host, server.port, path, clients, seconds, watch, rcvbuf)
    try:
        headless = run.wait_for_heads()
        split = watch.connections()
        elapsed, cpu, worker_cpu = run.measure()
    finally:
        run.close()
    received = run.received
    starved = sum(1 for window in run.per_window for n in window if n == 0)
    return {"clients": clients, "seconds": elapsed, "throughput": sum(received) / elapsed,
            "slowest": min(received), "fastest": max(received),
            "fairness": min(received) / max(received) if max(received) else 0.0,
            "starved_windows": starved, "windows": len(run.per_window), "planned_windows": run.windows,
            "stalled_windows": run.stalled,
            "headless": headless, "closed": run.closed,
            "split": split, "rss_mb": watch.peaks_mb(), "client_cpu": cpu / elapsed,
            "worker_cpu": [seconds / elapsed for seconds in worker_cpu], "vanished": watch.vanished()}


# ------------------------------------------------------------ idle connections

class IdleCrowd:
    """Connections that each made one request, read its whole response, and now sit idle (keep-alive)."""

    def __init__(self, host, port, path):
        self.host, self.port = host, port
        self.request = get_request(host, path)
        self.ep = select.epoll()
        self.socks = []
        self.closed_by_server = 0

    def open(self, count):
        """Connect, ask and read in batches (bounded concurrency); returns the connections now idle."""
        while len(self.socks) < count:
            batch = connect_all(self.host, self.port, min(CONNECT_CONCURRENCY, count - len(self.socks)))
            self.complete_requests(batch)
        return len(self.socks) - self.count_closed()

    def complete_requests(self, batch):
        responses = {}
        with select.epoll() as ep:
            for sock in batch:
                sock.send(self.request)
                responses[sock.fileno()] = (sock, bytearray())
                ep.register(sock.fileno(), select.EPOLLIN)
            deadline = time.monotonic() + SETUP_TIMEOUT
            while responses:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(responses)} idle-phase requests unanswered after {SETUP_TIMEOUT}s")
                for fd, _ in ep.poll(1.0):
                    sock, buf = responses[fd]
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("the server closed a connection before answering it")
                    buf += data
                    length = response_length(buf)
                    if length is not None and len(buf) >= length:
                        if not buf.startswith(b"HTTP/1.1 200 "):
                            raise RuntimeError(f"unexpected response: {bytes(buf[:60])!r}")
                        del responses[fd]
                        ep.unregister(fd)
                        self.socks.append(sock)
                        self.ep.register(fd, select.EPOLLIN)  # from now on, any event means it was closed

    def count_closed(self):
        for fd, _ in self.ep.poll(0):
            self.ep.unregister(fd)
            self.closed_by_server += 1
        return self.closed_by_server

    def close(self):
        self.ep.close()
        for sock in self.socks:
            sock.close()


def run_idle(server, path, count):
    watch = WorkerWatch(server)
    fetch(server.host, server.port, path)  # warm the worker's caches before the baseline
    before = watch.rss_kb()
    crowd = IdleCrowd(server.host, server.port, path)
    try:
        held = crowd.open(count)
        after = watch.rss_kb()
        split = watch.connections()
        latencies = []
        for _ in range(LATENCY_PROBES):
            latencies.append(fetch(server.host, server.port, path)[0])
            time.sleep(PROBE_GAP)  # probes spread over a second, not one burst
        still_held = count - crowd.count_closed()
    finally:
        crowd.close()
    delta = (sum(after) - sum(before)) * 1024
    return {"connections": held, "still_held": still_held, "split": split, "rss_before_mb": sum(before) / 1024,
            "rss_after_mb": sum(after) / 1024, "bytes_per_connection": delta / held if held else 0.0,
            "median_ms": statistics.median(latencies) * 1000, "max_ms": max(latencies) * 1000,
            "worker_rss_mb": [kb / 1024 for kb in after], "vanished": watch.vanished()}


# ------------------------------------------------------------ the report

def machine_line():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{datetime.date.today().isoformat()}, {cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}, load average {load} at start")


def mark(ok):
    return "yes" if ok else "**NO**"


def progressed(r):
    """Every download got its head and data in every window (all of them judged), and none was closed."""
    return (r["starved_windows"] == 0 and r["headless"] == 0 and r["closed"] == 0
            and r["windows"] == r["planned_windows"])


def download_table(rows):
    lines = ["| clients | aggregate MB/s | slowest client MB | fastest client MB | fairness (slowest/fastest) "
             "| data in every 2 s window | connections per worker | worker peak RSS MB | CPU: workers / client |",
             "|---:|---:|---:|---:|---:|---|---|---|---|"]
    for r in rows:
        progress = progressed(r)
        detail = "" if progress else (f" ({r['starved_windows']} empty of {r['clients'] * r['windows']} in "
                                      f"{r['windows']} windows judged, {r['headless']} without head, "
                                      f"{r['closed']} closed)")
        if r["stalled_windows"]:
            detail += f" ({r['stalled_windows']} windows void: the client stalled)"
        lines.append(f"| {r['clients']} | {r['throughput'] / MB:,.0f} | {r['slowest'] / MB:,.1f} | "
                     f"{r['fastest'] / MB:,.1f} | {r['fairness']:.2f} | {mark(progress)}{detail} | "
                     f"{' / '.join(map(str, r['split'])) or 'n/a'} | "
                     f"{' / '.join(f'{mb:.1f}' for mb in r['rss_mb']) or 'n/a'} | "
                     f"{' / '.join(f'{c:.0%}' for c in r['worker_cpu'] + [r['client_cpu']])} |")
    return "\n".join(lines)


def idle_table(r):
    return "\n".join([
        "| idle connections held | connections per worker | workers' RSS before -> after MB | RSS per connection "
        "| normal request median / max | still open at the end |",
        "|---:|---|---|---:|---|---:|",
        f"| {r['connections']:,} | {' / '.join(map(str, r['split'])) or 'n/a'} | {r['rss_before_mb']:.1f} -> "
        f"{r['rss_after_mb']:.1f} | {r['bytes_per_connection'] / 1024:.2f} KB | {r['median_ms']:.1f} / "
        f"{r['max_ms']:.1f} ms | {r['still_held']:,} |"])


def goals(downloads, idle, idle_target):
    """(goal, met) pairs for the issue's goals; RSS goals count only when the workers could be watched."""
    top = downloads[-1]
    phases = downloads + ([idle] if idle else [])
    checks = [("no worker died during the run", not any(r["vanished"] for r in phases)),
              (f"N={top['clients']}: every client got data in every {WINDOW:.0f} s window", progressed(top)),
              (f"N={top['clients']}: fairness >= {GOAL_FAIRNESS}", top["fairness"] >= GOAL_FAIRNESS)]
    if top["rss_mb"]:
        peak = max(mb for r in downloads for mb in r["rss_mb"])
        checks.append((f"worker RSS < {GOAL_WORKER_RSS_MB} MB (peak {peak:.1f})", peak < GOAL_WORKER_RSS_MB))
    if idle is not None:
        checks.append((f"{idle_target:,} idle connections held to the end", idle["still_held"] == idle_target))
        if idle["split"]:
            checks.append((f"< {GOAL_BYTES_PER_IDLE // 1024} KB per idle connection",
                           idle["bytes_per_connection"] < GOAL_BYTES_PER_IDLE))
        checks.append((f"normal request < {GOAL_LATENCY_MS} ms meanwhile (max {idle['max_ms']:.1f} ms)",
                       idle["max_ms"] < GOAL_LATENCY_MS))
    return checks


# ------------------------------------------------------------ main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="target this running loopback server instead of starting one")
    parser.add_argument("--root", help="with --url: that server's document root (the test files go there)")
    parser.add_argument("--master-pid", type=int, default=0, help="with --url: its master pid (worker RSS)")
    parser.add_argument("-w", "--workers", type=int, default=2, help="workers of the server started (2)")
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENT_COUNTS), help="download counts")
    parser.add_argument("--seconds", type=float, default=DOWNLOAD_SECONDS, help="measured seconds per count")
    parser.add_argument("--size", type=int, default=FILE_SIZE, help="bytes in the sparse file")
    parser.add_argument("--rcvbuf", type=int, default=CLIENT_RCVBUF,
                        help="each download socket's receive buffer in bytes; 0 lets the kernel tune it")
    parser.add_argument("--idle", type=int, default=IDLE_CONNECTIONS, help="idle connections (0 skips)")
    args = parser.parse_args(argv)
    if args.url and not args.root:
        parser.error("--url needs --root (the server's document root, where the test files are made)")
    return args


def make_files(root, size):
    """The sparse big file and a small one, under names of their own; returns their URL paths."""
    stem = f"scale-{os.getpid()}"
    with open(os.path.join(root, stem + ".bin"), "wb") as f:
        f.truncate(size)
    with open(os.path.join(root, stem + ".txt"), "wb") as f:
        f.write(SMALL_BODY)
    return f"/{stem}.bin", f"/{stem}.txt"


def remove_files(root, paths):
    for path in paths:
        try:
            os.unlink(os.path.join(root, path.lstrip("/")))
        except FileNotFoundError:
            pass


def run_phase(args, tmp, name, measure):
    """Run one phase against --url, or against a fresh server of our own (so memory baselines are clean)."""
    if args.url:
        return measure(RunningServer(args.url, args.master_pid))
    server = start_server(os.path.join(tmp, "www"), args.workers, os.path.join(tmp, f"{name}.log"))
    try:
        result = measure(server)
    except Exception:
        print(server.log_text()[-LOG_TAIL:], file=sys.stderr)
        raise
    finally:
        server.stop()
    if result["vanished"]:
        print(f"{name}: workers {result['vanished']} died; server log:\n{server.log_text()[-LOG_TAIL:]}",
              file=sys.stderr)
    return result


def main(argv=None):
    args = parse_args(argv)
    limit = raise_file_limit()
    if max(args.clients + [args.idle]) + SPARE_DESCRIPTORS > limit:
        raise SystemExit(f"scale: the open-file limit ({limit}) is too low for this many connections")
    print(f"Machine: {machine_line()}\n", flush=True)
    tmp = tempfile.mkdtemp(prefix="oserver-scale-")
    root = args.root or os.path.join(tmp, "www")
    os.makedirs(root, exist_ok=True)
    paths = make_files(root, args.size)
    big, small = paths
    try:
        downloads = []
        for clients in args.clients:
            def measure(server):
                return run_downloads(server, big, clients, args.seconds, args.rcvbuf)
            downloads.append(run_phase(args, tmp, f"downloads-{clients}", measure))
            print(f"downloads, N={clients}: done", file=sys.stderr, flush=True)
        idle = None
        if args.idle:
            idle = run_phase(args, tmp, "idle", lambda server: run_idle(server, small, args.idle))
    finally:
        remove_files(root, paths)
        shutil.rmtree(tmp, ignore_errors=True)
    window = f"{args.rcvbuf // 1024} KB receive buffer" if args.rcvbuf else "kernel-tuned receive buffer"
    print(f"Downloads of one {args.size / 1e9:,.0f} GB sparse file, {args.workers} workers, "
          f"{args.seconds:.0f} s each, every client with a {window}:\n")
    print(download_table(downloads) + "\n")
    if idle is not None:
        print(f"Idle keep-alive connections (each made one request):\n\n{idle_table(idle)}\n")
    checks = goals(downloads, idle, args.idle)
    for goal, met in checks:
        print(f"- {'met' if met else 'MISSED'}: {goal}")
    return 0 if all(met for _, met in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
