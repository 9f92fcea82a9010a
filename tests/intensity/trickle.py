"""A loopback HTTP server that answers one byte a second: in its body (headers first, at once) or
already in its headers. A live source that does this must not hold a command past its time budget."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

BODY = b'{"data": [' + b" " * 4096 + b"]}"


def _serve_one(conn: socket.socket, where: str, stop: threading.Event) -> None:
    with conn:
        conn.settimeout(1.0)
        try:
            conn.recv(65536)  # the request (small: one read)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
            payload = head.encode() + BODY
            if where == "body":
                conn.sendall(head.encode())
                payload = BODY
            for i in range(len(payload)):
                if stop.wait(1.0):
                    return
                conn.sendall(payload[i : i + 1])
        except OSError:  # the client gave up and closed: what it should do
            return


@contextmanager
def trickling_server(where: str = "body") -> Iterator[str]:
    """The base URL of a server that trickles every answer ("body" or "headers")."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_serve_one, args=(conn, where, stop), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        time.sleep(0)
