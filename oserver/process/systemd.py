"""systemd integration, stdlib only: sd_notify datagrams to $NOTIFY_SOCKET and socket activation.

notify() speaks the sd_notify protocol (one AF_UNIX datagram of KEY=VALUE lines); inherited_sockets()
takes over the listening sockets systemd passes in LISTEN_FDS / LISTEN_PID (first fd is 3), with their names
(LISTEN_FDNAMES, from FileDescriptorName=).
"""

import os
import socket
import time

SD_LISTEN_FDS_START = 3


def notify(*lines):
    """Send KEY=VALUE lines to systemd; a no-op when not started by systemd with Type=notify."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address[0] == "@":  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), address)
    except OSError:
        return False
    return True


def monotonic_usec():
    """MONOTONIC_USEC=..., which systemd wants beside RELOADING=1."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def inherited_sockets():
    """[(socket, name)] of the listening sockets passed by systemd socket activation to this very process (the
    name is "" when systemd gave none), else []."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sockets = []
    for index, fd in enumerate(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)):
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        os.set_inheritable(fd, False)
        sockets.append((sock, names[index] if index < len(names) else ""))
    return sockets
