"""Receiving the daemon's results (docs/protocol.md, "Results out")."""

import collections
import time

import numpy as np
import zmq

from livealign.socket_owner import SocketOwner
from livealign.wire import image_from_part, unpack

# topic: str, header: dict, data: numpy array (average, frame, mosaic) or None.
Message = collections.namedtuple("Message", ["topic", "header", "data"])

TOPICS = ("drift", "average", "mosaic", "frame", "matrices", "matrices_window", "quality", "event",
          "series_end")


class Results(SocketOwner):
    """Subscribes to the daemon's PUB endpoint (``--publish``).

        results = Results("tcp://127.0.0.1:5556", topics=("drift", "series_end"))
        while (m := results.next(timeout_s=5)) is not None:
            print(m.topic, m.header["n_frames"])

    ``topics=()`` subscribes to everything. Iterating yields messages until
    ``iter_timeout_s`` passes without one.
    """

    def __init__(self, endpoint, topics=(), context=None, iter_timeout_s=10.0):
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self.topics = tuple(topics)
        for topic in self.topics or ("",):
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._socket.connect(endpoint)
        self.endpoint = endpoint
        self.iter_timeout_s = iter_timeout_s
        self._pending = collections.deque()

    def next(self, timeout_s):
        """The next message, or None when none arrives within ``timeout_s``."""
        if self._pending:
            return self._pending.popleft()
        return self._receive(timeout_s)

    def _receive(self, timeout_s):
        if not self._socket.poll(max(0, int(timeout_s * 1000)), zmq.POLLIN):
            return None
        parts = self._socket.recv_multipart()
        topic = parts[0].decode("utf-8", "replace")
        header = unpack(parts[1]) if len(parts) > 1 else {}
        data = image_from_part(header, parts[2]) if len(parts) > 2 and "shape" in header else None
        return Message(topic, header, data)

    def wait_for(self, topic, timeout_s, predicate=None):
        """The first message of ``topic`` (for which ``predicate(message)`` holds)
        within ``timeout_s``; None when none arrives. Others are skipped."""
        deadline = time.monotonic() + timeout_s
        while True:
            m = self.next(max(0.0, deadline - time.monotonic()))
            if m is None:
                return None
            if m.topic == topic and (predicate is None or predicate(m)):
                return m

    def wait_live(self, control, timeout_s=10.0):
        """Waits until the subscription is live (a SUB misses whatever is
        published before its subscription reaches the daemon): asks ``control``
        for ``reset`` until the daemon's ``reset`` event arrives. This abandons
        a running series; use it before sending. Raises TimeoutError."""
        extra = "event" not in self.topics and bool(self.topics)
        if extra:
            self._socket.setsockopt(zmq.SUBSCRIBE, b"event")
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                control.reset()
                m = self.wait_for("event", 0.2, lambda m: m.header.get("code") == "reset")
                if m is not None:
                    return
            raise TimeoutError("no reset event from %s within %.1f s" % (self.endpoint, timeout_s))
        finally:
            if extra:
                self._socket.setsockopt(zmq.UNSUBSCRIBE, b"event")
                # Drop the events that came in while subscribed, keep the rest.
                while True:
                    m = self._receive(0)
                    if m is None:
                        break
                    if m.topic != "event":
                        self._pending.append(m)

    def __iter__(self):
        while True:
            m = self.next(self.iter_timeout_s)
            if m is None:
                return
            yield m



def matrices_arrays(header):
    """The x, y and status n x n arrays of a ``matrices`` (or ``matrices_window``)
    message header: cell (r, c) covers frames ``i0 + r*block`` and ``j0 + c*block``
    onwards (docs/protocol.md); for k <= 256 frames the overview is the k x k matrix."""
    n = int(header["n"])
    order = "<" if header.get("byteorder", "little") == "little" else ">"
    x = np.frombuffer(header["x"], dtype=order + "f4").reshape(n, n)
    y = np.frombuffer(header["y"], dtype=order + "f4").reshape(n, n)
    status = np.frombuffer(header["status"], dtype="u1").reshape(n, n)
    return x, y, status


def mosaic_counts(header):
    """The uint16 rows x cols array of a ``mosaic`` message header: the fewest
    frames covering any mosaic pixel of each binned pixel (docs/protocol.md)."""
    rows, cols = (int(v) for v in header["shape"])
    order = "<" if header.get("byteorder", "little") == "little" else ">"
    return np.frombuffer(header["counts"], dtype=order + "u2").reshape(rows, cols)


def mosaic_frame0_coordinates(header):
    """Frame-0 pixel coordinates (row, col) of the top-left mosaic pixel of each
    binned pixel of a ``mosaic`` message: two rows x cols arrays. A binned pixel
    (r, c) covers ``bin`` x ``bin`` frame-0 pixels from there."""
    rows, cols = (int(v) for v in header["shape"])
    row0, _, col0, _ = (int(v) for v in header["extent"])
    step = int(header["bin"])
    return np.meshgrid(row0 + step * np.arange(rows), col0 + step * np.arange(cols), indexing="ij")
