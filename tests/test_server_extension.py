"""The Jupyter server extension: kernel websockets send without Nagle's delay (real sockets, tornado)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import tornado.web
import tornado.websocket

import oal_widget
from oal_widget import server_extension

CONFIG = (
    Path(__file__).resolve().parents[1] / "jupyter-config" / "jupyter_server_config.d" / "oal_widget.json"
)


def server_socket_nodelay(patch: bool) -> bool:
    """Open a real websocket on 127.0.0.1; whether the server's end of it has TCP_NODELAY."""
    seen: list[bool] = []

    class Handler(tornado.websocket.WebSocketHandler):
        def open(self):
            seen.append(server_extension.nodelay(self.ws_connection.stream.socket))

    if patch:
        assert server_extension.nodelay_on_open(Handler)
        assert not server_extension.nodelay_on_open(Handler)  # once only

    async def run():
        server = tornado.web.Application([(r"/ws", Handler)]).listen(0, "127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        try:
            client = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            for _ in range(200):
                if seen:
                    break
                await asyncio.sleep(0.01)
            client.close()
        finally:
            server.stop()

    asyncio.run(run())
    return seen[0]


def test_an_opened_websocket_sends_without_nagle_once_patched():
    assert server_socket_nodelay(patch=False) is False  # tornado's default: Nagle on
    assert server_socket_nodelay(patch=True) is True


def test_the_extension_patches_the_kernel_websocket_handler_of_the_server():
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    class App:
        class log:
            messages: list[str] = []

            @classmethod
            def info(cls, msg, *args):
                cls.messages.append(msg % args if args else msg)

    original = KernelWebsocketHandler.open
    try:
        server_extension._load_jupyter_server_extension(App)
        assert getattr(KernelWebsocketHandler.open, "_oal_widget_nodelay", False)
        server_extension._load_jupyter_server_extension(App)  # a second load patches nothing more
        assert KernelWebsocketHandler.open.__wrapped__ is original
        assert "TCP_NODELAY" in App.log.messages[0]
    finally:
        KernelWebsocketHandler.open = original


def test_the_package_names_the_extension_and_the_installed_config_enables_it():
    points = oal_widget._jupyter_server_extension_points()
    assert points == [{"module": "oal_widget.server_extension"}]
    assert json.loads(CONFIG.read_text()) == {"ServerApp": {"jpserver_extensions": {"oal_widget": True}}}


def test_the_extension_point_is_found_as_jupyter_server_looks_for_it():
    from jupyter_server.extension.utils import get_metadata

    package, points = get_metadata("oal_widget")
    assert package.__name__ == "oal_widget" and points[0]["module"] == "oal_widget.server_extension"


def test_the_environment_enables_the_extension_as_installed():
    """`make` puts the config where every Jupyter server of the environment reads it (an editable
    install leaves setup.cfg's data files out); the browser tests write their own copy, so only this
    catches an install step gone missing."""
    installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "oal_widget.json"
    assert installed.is_file(), f"{installed} is missing: run `make venv`"
    assert json.loads(installed.read_text()) == json.loads(CONFIG.read_text())
