"""Fault injection shared by the loopback key-service emulators.

Owns: the faults a key service can show a client, applied to the requests
of the emulated service (never to the /__emu/ admin endpoint): for the next
N requests, a throttling answer, a 5xx, a dropped connection, a malformed
200 answer, an oversized one; for every request while set, a latency before
the answer, an answer dripped out byte by byte, a hang (the request is held
without a byte of answer until released), and the service down (every
connection dropped). Each emulator maps "throttle" and "fail5xx" to its own
error shape; the rest is the same for both.

Knobs: POST /__emu/knobs {"throttle": N, "fail5xx": N, "drop": N,
"malformed": N, "oversized": N, "latency_ms": MS, "drip_ms": MS,
"hang": true|false}; POST /__emu/down {"down": bool}.
"""
import socket
import threading
import time

OVERSIZED = 2 << 20          # larger than any client should accept from a KMS
MALFORMED = b"<html><body>502 Bad Gateway</body></html>"


class Faults:
    COUNTED = ("throttle", "fail5xx", "drop", "malformed", "oversized")

    def __init__(self):
        self.counts = dict.fromkeys(self.COUNTED, 0)
        self.latency_ms = 0
        self.drip_ms = 0
        self.down = False
        self.released = threading.Event()
        self.released.set()
        self.held = 0                 # requests held by a hang right now

    def set(self, req):
        """Apply a /__emu/knobs body. Caller holds the emulator's lock."""
        for k in self.COUNTED:
            if k in req:
                self.counts[k] = int(req[k])
        for k in ("latency_ms", "drip_ms"):
            if k in req:
                setattr(self, k, int(req[k]))
        if "hang" in req:
            (self.released.clear if req["hang"] else self.released.set)()

    def take(self):
        """The counted fault for this request, or None. Caller holds the
        emulator's lock."""
        for k in self.COUNTED:
            if self.counts[k] > 0:
                self.counts[k] -= 1
                return k
        return None

    def before_answer(self, handler, kind):
        """Called outside the lock once the request is read. Returns True
        when the request was consumed (dropped, or answered with a fault)."""
        if self.down or kind == "drop":
            drop(handler)
            return True
        if not self.released.is_set():
            self.held += 1
            try:
                self.released.wait(600)
            finally:
                self.held -= 1
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        if kind == "malformed":
            send_raw(handler, 200, "application/json", MALFORMED, self.drip_ms)
            return True
        if kind == "oversized":
            send_raw(handler, 200, "application/json",
                     b'{"pad":"' + b"x" * OVERSIZED + b'"}', 0)
            return True
        return False


def drop(handler):
    """Close without an answer, as a crashed load balancer would."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def write_body(handler, data, drip_ms):
    if not drip_ms:
        handler.wfile.write(data)
        return
    try:
        for i in range(len(data)):
            handler.wfile.write(data[i:i + 1])
            handler.wfile.flush()
            time.sleep(drip_ms / 1000.0)
    except OSError:
        pass                      # the client gave up: what a slow drip is for


def send_raw(handler, status, ctype, data, drip_ms, extra=()):
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(data)))
    for k, v in extra:
        handler.send_header(k, v)
    handler.end_headers()
    write_body(handler, data, drip_ms)
