#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Seeds are small valid (and a few nearly valid) inputs, so the fuzzer starts
from the formats' interesting paths. Re-run after changing a format; the
files are committed. Multipart inputs use the layout of fuzz_input.hpp
(2-byte little-endian length, then the part)."""
import io
import os
import struct

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def parts(*items):
    return b"".join(struct.pack("<H", len(p)) + p for p in items)


def inbound():
    start = {"htype": "series_start", "series": 3, "shape": [4, 4], "dtype": "uint16",
             "pixel_size_A": [0.5, 0.5], "frame_time_s": 0.1, "expected_frames": 10,
             "meta": {"detector": "haadf", "tilt": [1, 2.5]}}
    write("inbound_decoder", "series_start", parts(msgpack.packb(start)))
    frame = {"htype": "frame", "series": 3, "frame": 0, "shape": [4, 4], "dtype": "uint16",
             "timestamp_s": 1.5}
    write("inbound_decoder", "frame_uint16",
          parts(msgpack.packb(frame), np.arange(16, dtype="<u2").tobytes()))
    frame = {"htype": "frame", "series": "s", "frame": 2, "shape": [2, 3], "dtype": "float64"}
    write("inbound_decoder", "frame_float64",
          parts(msgpack.packb(frame), np.ones(6, dtype="<f8").tobytes()))
    write("inbound_decoder", "series_end",
          parts(msgpack.packb({"htype": "series_end", "series": 3, "frames": 10})))
    write("inbound_decoder", "short_payload",
          parts(msgpack.packb(frame), b"\0" * 7))


def control():
    for cmd in ["status", "snapshot", "save", "reset", "shutdown"]:
        write("control_request", cmd, msgpack.packb({"cmd": cmd}))
    write("control_request", "reset_token", msgpack.packb({"cmd": "reset", "token": "abc"}))
    write("control_request", "matrices_window",
          msgpack.packb({"cmd": "matrices_window", "i0": 10, "j0": 200, "n": 64}))


def npy():
    for name, array in [("u2_2d", np.arange(12, dtype="<u2").reshape(3, 4)),
                        ("f4_3d", np.zeros((2, 3, 3), dtype="<f4")),
                        ("f8_be", np.ones((2, 2), dtype=">f8")),
                        ("u1_2d", np.arange(4, dtype="u1").reshape(2, 2))]:
        b = io.BytesIO()
        np.save(b, array)
        write("npy_reader", name, b.getvalue())
    b = io.BytesIO()
    np.lib.format.write_array(b, np.arange(4, dtype="<i4").reshape(2, 2), version=(2, 0))
    write("npy_reader", "i4_v2", b.getvalue())


def tiff(pages, bits, sample_format, big_endian=False):
    """A minimal baseline grayscale TIFF, one strip per page."""
    e = ">" if big_endian else "<"
    out = bytearray((b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8))
    for k, page in enumerate(pages):
        rows, cols = page.shape
        data = page.astype(page.dtype.newbyteorder(e)).tobytes()
        entries = [(256, 3, 1, cols), (257, 3, 1, rows), (258, 3, 1, bits), (259, 3, 1, 1),
                   (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1), (278, 3, 1, rows),
                   (279, 4, 1, len(data)), (339, 3, 1, sample_format)]
        ifd_size = 2 + 12 * len(entries) + 4
        data_offset = len(out) + ifd_size
        next_ifd = 0 if k + 1 == len(pages) else data_offset + len(data)
        out += struct.pack(e + "H", len(entries))
        for tag, typ, count, value in entries:
            if tag == 273:
                value = data_offset
            if typ == 3:
                out += struct.pack(e + "HHIHH", tag, typ, count, value, 0)
            else:
                out += struct.pack(e + "HHII", tag, typ, count, value)
        out += struct.pack(e + "I", next_ifd)
        out += data
    return bytes(out)


def tiffs():
    write("tiff_reader", "u16_1page", tiff([np.arange(16, dtype=np.uint16).reshape(4, 4)], 16, 1))
    write("tiff_reader", "f32_2pages",
          tiff([np.zeros((3, 5), np.float32), np.ones((3, 5), np.float32)], 32, 3))
    write("tiff_reader", "u8_be", tiff([np.arange(6, dtype=np.uint8).reshape(2, 3)], 8, 1, True))


def http():
    write("http_request", "get_index", b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
    write("http_request", "get_asset", b"GET /index.html?x=1 HTTP/1.0\r\n\r\n")
    write("http_request", "upgrade",
          b"GET /ws HTTP/1.1\r\nHost: h:1\r\nOrigin: http://h:1\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Sec-WebSocket-Version: 13\r\n\r\n")
    write("http_request", "post_chunked",
          b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    write("http_request", "traversal", b"HEAD /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: h\r\n\r\n")


def ws_frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44"):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def websocket():
    snap = msgpack.packb({"cmd": "snapshot"})
    write("websocket_frame", "snapshot", ws_frame(2, snap))
    write("websocket_frame", "fragmented", ws_frame(2, snap[:3], fin=False) + ws_frame(0, snap[3:]))
    write("websocket_frame", "ping_text_close",
          ws_frame(9, b"hi") + ws_frame(1, b"hello") + ws_frame(8, struct.pack(">H", 1000)))
    write("websocket_frame", "long", ws_frame(2, b"x" * 300))


if __name__ == "__main__":
    inbound()
    control()
    npy()
    tiffs()
    http()
    websocket()
