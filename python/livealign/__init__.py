"""Python client of the livealign daemon (``livealign serve``).

Pure Python on pyzmq, msgpack and numpy. The wire format is docs/protocol.md
of the livealign sources; this package only packs and unpacks it:

- :class:`Sender` sends a series of frames (``series_start``, ``frame``,
  ``series_end``), one or several channels per frame.
- :class:`Results` subscribes to the published results (``drift``,
  ``average``, ``mosaic``, ``quality``, ...) and decodes images to numpy arrays.
- :class:`Control` asks the daemon for ``status``, ``snapshot``, ``save``,
  ``reset`` and ``shutdown``.
"""

from livealign.control import Control, ControlError, ControlTimeout
from livealign.results import Message, Results
from livealign.sender import Sender
from livealign.wire import PROTOCOL_VERSION, WIRE_DTYPES

__all__ = [
    "Control",
    "ControlError",
    "ControlTimeout",
    "Message",
    "PROTOCOL_VERSION",
    "Results",
    "Sender",
    "WIRE_DTYPES",
]
