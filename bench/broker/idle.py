#!/usr/bin/env python3
"""Opens COUNT keep-alive connections to a proxy, one completed request on each, and
holds them idle.

usage: idle.py PORT PATH COUNT READY_FILE [--window 64] [--deadline 60] [--hold-file F]

Connections are opened at most WINDOW at a time; each sends one GET (keep-alive, the
plugin's own credentials, as the load generators do) and, once its response has fully
arrived, stays open and idle. When every connection has its response, or DEADLINE
seconds have passed, one JSON line goes to READY_FILE: opened, completed, pending (sent,
no response yet), failed. The connections are then held until HOLD_FILE exists (the
caller creates it once it has measured), and one last JSON line on stdout says how many
were still open (the server had not closed them) just before they are closed.
"""

import json
import os
import selectors
import socket
import sys
import time

REQUEST = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    "Authorization: Bearer plugin-own-secret\r\nCookie: session=plugin-cookie\r\n"
    "Accept: application/json\r\n\r\n"
)


def response_complete(data):
    """True once data holds a whole response with a Content-Length body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def still_open(sock):
    """The server has not closed it: nothing to read (would block), no EOF."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    args = sys.argv[1:]
    options = {"--window": "64", "--deadline": "60", "--hold-file": ""}
    positional = []
    while args:
        arg = args.pop(0)
        if arg in options:
            options[arg] = args.pop(0)
        else:
            positional.append(arg)
    port, path, count, ready_file = int(positional[0]), positional[1], int(positional[2]), positional[3]
    window, deadline = int(options["--window"]), time.monotonic() + float(options["--deadline"])
    request = REQUEST.format(path=path, port=port).encode()

    selector = selectors.DefaultSelector()
    done, failed, started = [], 0, 0
    in_flight = {}  # socket -> bytes received so far, None until connected and sent

    def start_one():
        nonlocal started
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE)
        in_flight[sock] = None
        started += 1

    while (started < count or in_flight) and time.monotonic() < deadline:
        while started < count and len(in_flight) < window:
            start_one()
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            if in_flight[sock] is None:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    selector.unregister(sock)
                    del in_flight[sock]
                    sock.close()
                    failed += 1
                    continue
                sock.sendall(request)
                in_flight[sock] = b""
                selector.modify(sock, selectors.EVENT_READ)
                continue
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                selector.unregister(sock)
                del in_flight[sock]
                sock.close()
                failed += 1
                continue
            in_flight[sock] += chunk
            if response_complete(in_flight[sock]):
                selector.unregister(sock)
                del in_flight[sock]
                done.append(sock)

    status = {"requested": count, "opened": started, "completed": len(done),
              "pending": len(in_flight), "failed": failed}
    with open(ready_file + ".tmp", "w") as f:
        f.write(json.dumps(status) + "\n")
    os.rename(ready_file + ".tmp", ready_file)

    hold_file = options["--hold-file"]
    while hold_file and not os.path.exists(hold_file):
        time.sleep(0.1)
    status["still_open"] = sum(still_open(sock) for sock in done)
    for sock in list(done) + list(in_flight):
        sock.close()
    print(json.dumps(status))


if __name__ == "__main__":
    main()
