"""The pieces of wire protocol v1 (docs/protocol.md) the client classes share."""

import msgpack
import numpy as np

PROTOCOL_VERSION = 1

# Wire dtype name -> numpy dtype of the pixel bytes (little-endian, as the
# protocol requires).
WIRE_DTYPES = {
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}


def wire_dtype_name(dtype):
    """The wire name of a numpy dtype (or of a wire name); ValueError if none."""
    if isinstance(dtype, str) and dtype in WIRE_DTYPES:
        return dtype
    kind = np.dtype(dtype)
    for name, wire in WIRE_DTYPES.items():
        if kind.kind == wire.kind and kind.itemsize == wire.itemsize:
            return name
    raise ValueError(
        "dtype %s is not one of the wire dtypes %s" % (kind, ", ".join(WIRE_DTYPES))
    )


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def image_from_part(header, data):
    """A published image part as a numpy array with the header's shape and dtype."""
    dtype = np.dtype(WIRE_DTYPES.get(header.get("dtype", "float32"), "<f4"))
    if header.get("byteorder", "little") == "big":
        dtype = dtype.newbyteorder(">")
    rows, cols = header["shape"]
    return np.frombuffer(data, dtype=dtype).reshape(rows, cols)
