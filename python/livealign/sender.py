"""Sending a series of frames to the daemon (docs/protocol.md, "Frames in")."""

import numpy as np
import zmq

from livealign.socket_owner import SocketOwner
from livealign.wire import WIRE_DTYPES, pack, wire_dtype_name


class Sender(SocketOwner):
    """Sends ``series_start``, ``frame`` and ``series_end`` messages.

    ``pattern="push"`` pairs with a daemon started with ``--source-pattern pull``
    (back-pressure: nothing is dropped); ``"pub"`` with the daemon's default
    ``sub`` (frames sent before the daemon subscribed are lost: call
    :meth:`wait_for_receiver` first). ``bind=True`` binds ``endpoint``; the
    default connects to it (the daemon then runs with ``--source-bind true``).

        with Sender("tcp://127.0.0.1:5555") as sender:
            sender.start_series("run-1", (512, 512), "uint16", frame_time_s=0.5)
            for i, image in enumerate(images):
                sender.send_frame(i, image)
            sender.end_series()
    """

    def __init__(self, endpoint, pattern="push", bind=False, context=None, linger_s=10.0):
        if pattern not in ("push", "pub"):
            raise ValueError('pattern must be "push" or "pub", not %r' % (pattern,))
        self.pattern = pattern
        self._context = context or zmq.Context.instance()
        # XPUB instead of PUB: it reports subscriptions, so a sender can wait
        # for the daemon before sending (PUB drops what nobody receives).
        self._socket = self._context.socket(zmq.PUSH if pattern == "push" else zmq.XPUB)
        # close() waits this long for queued frames to leave.
        self._socket.setsockopt(zmq.LINGER, int(linger_s * 1000))
        if bind:
            self._socket.bind(endpoint)
        else:
            self._socket.connect(endpoint)
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint
        self._series = None
        self._frames_sent = 0

    # -- series -------------------------------------------------------------

    def start_series(self, series, shape, dtype, pixel_size_A=None, frame_time_s=None,
                     expected_frames=None, channels=None, register_channel=None, meta=None):
        """Starts a series: ``shape`` (rows, cols) and ``dtype`` hold for every frame.

        ``channels`` names the detectors of a multi-channel series (each frame
        then carries one image per channel, in this order); ``register_channel``
        is the one the daemon registers on (default: the first).
        """
        if not isinstance(series, (int, str)) or isinstance(series, bool):
            raise TypeError("series must be an int or a str")
        rows, cols = (int(n) for n in shape)
        if rows <= 0 or cols <= 0:
            raise ValueError("shape must be two positive numbers, not %r" % (shape,))
        header = {"htype": "series_start", "series": series, "shape": [rows, cols],
                  "dtype": wire_dtype_name(dtype)}
        if pixel_size_A is not None:
            header["pixel_size_A"] = (float(pixel_size_A) if np.isscalar(pixel_size_A)
                                      else [float(v) for v in pixel_size_A])
        if frame_time_s is not None:
            header["frame_time_s"] = float(frame_time_s)
        if expected_frames is not None:
            header["expected_frames"] = int(expected_frames)
        if channels is not None:
            channels = [str(c) for c in channels]
            if not channels or len(set(channels)) != len(channels):
                raise ValueError("channels must be distinct names, at least one")
            header["channels"] = channels
        if register_channel is not None:
            if channels is None or register_channel not in channels:
                raise ValueError("register_channel %r is not one of the channels" % (register_channel,))
            header["register_channel"] = register_channel
        if meta is not None:
            header["meta"] = meta
        self._socket.send(pack(header))
        self._series = {"series": series, "shape": (rows, cols), "dtype": header["dtype"],
                        "channels": channels}
        self._frames_sent = 0
        return header

    def send_frame(self, index, image, timestamp_s=None, scan_offset_px=None):
        """Sends frame ``index``: a 2-D array, or ``{channel: array}`` for the
        series' channels.

        ``scan_offset_px`` [x, y] says by how much the scan's field of view was
        moved for this frame (scan feedback); see docs/protocol.md.
        """
        s = self._require_series()
        if int(index) < 0:
            raise ValueError("frame index must be >= 0")
        channels = s["channels"]
        if isinstance(image, dict):
            if channels is None:
                raise ValueError("a dict of images needs channels in start_series")
            if set(image) != set(channels):
                raise ValueError("frame has channels %s, the series %s" % (sorted(image), channels))
            images = [image[c] for c in channels]
        else:
            if channels is not None and len(channels) != 1:
                raise ValueError("the series has channels %s: give a dict {channel: image}" % (channels,))
            images = [image]
        parts = [self._pixels(a, s) for a in images]
        header = {"htype": "frame", "series": s["series"], "frame": int(index),
                  "shape": list(s["shape"]), "dtype": s["dtype"]}
        if channels is not None:
            header["channels"] = channels
        if timestamp_s is not None:
            header["timestamp_s"] = float(timestamp_s)
        if scan_offset_px is not None:
            header["scan_offset_px"] = [float(scan_offset_px[0]), float(scan_offset_px[1])]
        self._socket.send_multipart([pack(header)] + parts)
        self._frames_sent += 1
        return header

    def end_series(self, frames=None):
        """Ends the series; ``frames`` (default: how many were sent) lets the
        daemon report missing trailing frames."""
        s = self._require_series()
        n = self._frames_sent if frames is None else int(frames)
        self._socket.send(pack({"htype": "series_end", "series": s["series"], "frames": n}))
        self._series = None
        return n

    # -- sockets ------------------------------------------------------------

    def wait_for_receiver(self, timeout_s):
        """PUB: waits for a subscription (True) or ``timeout_s`` (False).
        PUSH: True (a connected PUSH queues until the daemon takes the frames)."""
        if self.pattern == "push":
            return True
        if self._socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            self._socket.recv()  # the subscription message
            return True
        return False


    def _require_series(self):
        if self._series is None:
            raise RuntimeError("no series: call start_series first")
        return self._series

    @staticmethod
    def _pixels(image, series):
        a = np.asarray(image)
        if a.shape != series["shape"]:
            raise ValueError("image shape %s differs from the series' %s" % (a.shape, series["shape"]))
        wire = WIRE_DTYPES[series["dtype"]]
        if a.dtype.kind != wire.kind or a.dtype.itemsize != wire.itemsize:
            raise ValueError("image dtype %s differs from the series' %s" % (a.dtype, series["dtype"]))
        # Only the byte order may change; the values never.
        return np.ascontiguousarray(a, dtype=wire).tobytes()
