"""The close/context-manager behaviour shared by Sender, Results and Control."""


class SocketOwner:
    """Owns ``self._socket`` (a zmq socket, or None before it is made).

    ``close()`` is idempotent, and ``with`` closes the socket on leaving.
    """

    _socket = None

    def close(self):
        if self._socket is not None and not self._socket.closed:
            self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
