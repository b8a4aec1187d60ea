"""A Jupyter server extension: the server sends on kernel websockets at once (``TCP_NODELAY``).

Tornado leaves Nagle's algorithm on for websockets, and Jupyter Server does not turn it off. A key in
the panel makes the kernel answer with a small message ("busy") and, a few ms later, the next image (a
small class switch); the browser, which has just sent the key, delays its ACK of "busy" (Linux: up to
40 ms, hoping to send it with data of its own), and Nagle holds the image's message until that ACK.
So a key's image waited about 40 ms in the server's socket, while the page was idle, on about one key
in five (those whose browser socket was in its interactive, delayed-ACK mode). ``TCP_NODELAY`` sends
each message when it is written; the messages are few and small, so nothing of note is lost.

Enabled by ``jupyter-config/jupyter_server_config.d/oal_widget.json`` (installed with the package) or
``jupyter server extension enable oal_widget``; the server must be started after that. Only the
server process imports this module; the kernel never does.
"""

from __future__ import annotations

import functools
import logging
import socket

log = logging.getLogger(__name__)

#: Set on a patched ``open`` so that loading the extension twice patches once.
_MARK = "_oal_widget_nodelay"


def nodelay_on_open(handler_class) -> bool:
    """Make ``handler_class`` (a tornado ``WebSocketHandler``) set ``TCP_NODELAY`` on each connection as
    it opens. False if it did already."""
    original = handler_class.open
    if getattr(original, _MARK, False):
        return False

    @functools.wraps(original)
    def open(self, *args, **kwargs):
        try:
            self.set_nodelay(True)
        except Exception:  # never stop a kernel connection over a socket option
            log.warning("oal_widget: could not set TCP_NODELAY on a kernel websocket", exc_info=True)
        return original(self, *args, **kwargs)

    setattr(open, _MARK, True)
    handler_class.open = open
    return True


def nodelay(sock: socket.socket) -> bool:
    """Whether ``sock`` sends without Nagle's delay (for tests and checks)."""
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def _load_jupyter_server_extension(serverapp) -> None:
    try:
        from jupyter_server.services.kernels.websocket import KernelWebsocketHandler
    except ImportError:  # Jupyter Server 1.x: the server runs as before, with Nagle's delay
        serverapp.log.info("oal_widget: this Jupyter Server has no kernel websocket handler to patch")
        return
    nodelay_on_open(KernelWebsocketHandler)
    serverapp.log.info("oal_widget: kernel websockets send without delay (TCP_NODELAY)")
