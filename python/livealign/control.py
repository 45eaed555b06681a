"""Control requests to the daemon (docs/protocol.md, "Control")."""

import zmq

from livealign.socket_owner import SocketOwner
from livealign.wire import pack, unpack


class ControlError(RuntimeError):
    """The daemon answered ``ok: false``; ``reply`` is its answer."""

    def __init__(self, cmd, reply):
        super().__init__("livealign %s failed: %s (%s)" % (cmd, reply.get("error", ""), reply.get("code", "")))
        self.reply = reply


class ControlTimeout(TimeoutError):
    """No reply within the timeout (daemon not running, or busy)."""


class Control(SocketOwner):
    """REQ client of the daemon's ``--control`` endpoint.

    Each call returns the reply as a dict. A call without a reply within
    ``timeout_s`` raises :class:`ControlTimeout`; the socket is then recreated
    (a REQ socket that missed its reply cannot send again), so the object stays
    usable. ``ok: false`` raises :class:`ControlError` unless ``check=False``.
    """

    def __init__(self, endpoint, timeout_s=5.0, context=None):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._context = context or zmq.Context.instance()
        self._socket = None
        self._open()

    def _open(self):
        self._socket = self._context.socket(zmq.REQ)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(self.endpoint)

    def request(self, cmd, timeout_s=None, check=True, **fields):
        """Sends ``{cmd, **fields}`` and returns the reply dict."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        self._socket.send(pack(dict(fields, cmd=cmd)))
        if not self._socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            self._socket.close()
            self._open()
            raise ControlTimeout("livealign %s: no reply from %s within %.1f s"
                                 % (cmd, self.endpoint, timeout_s))
        reply = unpack(self._socket.recv())
        if check and not reply.get("ok", False):
            raise ControlError(cmd, reply)
        return reply

    def status(self, timeout_s=None):
        return self.request("status", timeout_s)

    def snapshot(self, timeout_s=None):
        return self.request("snapshot", timeout_s)

    def save(self, timeout_s=None):
        return self.request("save", timeout_s)

    def reset(self, timeout_s=None):
        return self.request("reset", timeout_s)

    def shutdown(self, timeout_s=None):
        return self.request("shutdown", timeout_s)

