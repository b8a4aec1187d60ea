"""Nagle's algorithm on a Jupyter-like websocket: why a key's image could wait ~40 ms in the server.

One command (a few seconds, no TensorFlow, no browser)::

    .venv/bin/python bench/websocket_nodelay.py

A tornado websocket server and client on 127.0.0.1 replay the key's pattern: the client (the browser)
sends a key a few ms after it received a message (a trainer update: its TCP is then in its
interactive, delayed-ACK mode); the server (Jupyter Server) answers at once with a small message (the
kernel's "busy") and ``--gap`` ms later with another (the image's class switch). The second message's
delay, client side, with tornado's default (Nagle on, as Jupyter Server leaves it) and with the
package's server extension (``oal_widget/server_extension.py``: ``TCP_NODELAY`` on each connection),
and, for contrast, with Nagle on but the key sent long after the last update (no delayed ACK, no wait:
why only some keys waited).
``--out`` gets the table as CSV (``bench/_report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np
import tornado.web
import tornado.websocket
from _report import report  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from oal_widget.server_extension import nodelay_on_open  # noqa: E402


def handler_class(gap_s: float, patched: bool):
    class Kernel(tornado.websocket.WebSocketHandler):
        """Answers a key with "busy" at once and the switch ``gap_s`` later; ticks every 250 ms."""

        def open(self):
            asyncio.ensure_future(self.tick())

        async def tick(self):
            while self.ws_connection and not self.ws_connection.is_closing():
                self.write_message(json.dumps(["update", time.time()]) + " " * 700)
                await asyncio.sleep(0.25)

        async def on_message(self, message):
            self.write_message(json.dumps(["busy", time.time()]) + " " * 300)
            await asyncio.sleep(gap_s)
            self.write_message(json.dumps(["switch", time.time()]) + " " * 600)

    if patched:
        nodelay_on_open(Kernel)
    return Kernel


async def delays(gap_s: float, patched: bool, keys: int, after_update_s: float) -> list[float]:
    """The switch's delays (ms), one per key."""
    server = tornado.web.Application([(r"/ws", handler_class(gap_s, patched))]).listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    client = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
    out = []
    try:
        for _ in range(keys):
            while not (await client.read_message()).startswith('["update"'):
                pass
            await asyncio.sleep(after_update_s)
            client.write_message(json.dumps({"event": "keydown"}) + " " * 400)
            while True:
                message = await client.read_message()
                if message.startswith('["switch"'):
                    out.append((time.time() - json.loads(message[: message.index("]") + 1])[1]) * 1e3)
                    break
    finally:
        client.close()
        server.stop()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=30, help="keys per condition (default 30)")
    parser.add_argument("--gap", type=float, default=5.0, help="ms between 'busy' and the switch (default 5)")
    parser.add_argument(
        "--after-update", type=float, default=5.0, help="ms from an update to the key (default 5)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "websocket_nodelay.csv")
    args = parser.parse_args(argv)
    rows = []
    after = args.after_update / 1e3
    conditions = [
        (False, after, "tornado default (Nagle on)"),
        (True, after, "server extension (TCP_NODELAY)"),
        # The browser's ACK is not delayed when it sends long after it last received: no stall.
        (False, 0.15, "Nagle on, the key 150 ms after an update"),
    ]
    for patched, after_s, name in conditions:
        d = np.array(asyncio.run(delays(args.gap / 1e3, patched, args.keys, after_s)))
        rows.append((f"{name}: switch delay p50", round(float(np.percentile(d, 50)), 2), "ms", "", ""))
        rows.append((f"{name}: switch delay max", round(float(d.max()), 2), "ms", "", ""))
        rows.append((f"{name}: keys delayed > 20 ms", int((d > 20).sum()), "", "0", f"of {len(d)}"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report(
        f"a small websocket message after another, {args.gap:g} ms apart, the client's key "
        f"{args.after_update:g} ms after an update (127.0.0.1, tornado)",
        rows,
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
