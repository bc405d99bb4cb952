"""A TCP proxy on 127.0.0.1 that caps the server-to-client byte rate: a slow tunnel on purpose.

Runs in a thread of its own with its own event loop, so a test's benchmark loop is not slowed
by it. Only localhost: it forwards to the upstream port given.
"""

from __future__ import annotations

import asyncio
import socket
import threading


class ThrottledProxy:
    def __init__(self, upstream_port: int, bytes_per_s: float, chunk: int = 64):
        self.upstream_port = upstream_port
        self.delay = chunk / bytes_per_s
        self.chunk = chunk
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThrottledProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: bool) -> None:
            try:
                while data := await reader.read(self.chunk if slow else 65536):
                    writer.write(data)
                    await writer.drain()
                    if slow:
                        await asyncio.sleep(self.delay)
            except (ConnectionError, OSError):
                pass
            finally:
                if not writer.is_closing():
                    writer.close()

        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(pipe(client_r, up_w, False), pipe(up_r, client_w, True))

        async def start() -> None:
            self._sock.listen(64)
            await asyncio.start_server(handle, sock=self._sock)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()
