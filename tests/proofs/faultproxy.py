"""A small TCP proxy that injects faults between two of our processes.

It runs its own event loop in a thread, so it outlives the tests' loops and
the processes it sits between never notice it until a fault is switched on:

- `pass`: bytes flow both ways untouched;
- `delay`: every chunk is held `delay_s` seconds (a slow or hung dependency:
  connections open, requests go in, answers come late or never);
- `refuse`: the port is closed (connection refused) and open connections are
  cut (a process that is down);
- `reset`: connections are accepted and closed at once.

`set("pass")` heals: the listener is back on the same port, held chunks are
released.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from common.embedded import free_port

CHUNK = 65536
MODES = ("pass", "delay", "refuse", "reset")


class FaultProxy:
    def __init__(self, target_port: int, name: str = "", port: int | None = None) -> None:
        self.name = name
        self.target_port = target_port
        self.port = port or free_port()
        self.mode = "pass"
        self.delay_s = 0.0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._healed: asyncio.Event | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # --- control, from any thread ------------------------------------------
    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"proxy {self.name} did not start")
        return self

    def set(self, mode: str, delay_s: float = 0.0) -> None:
        assert mode in MODES, mode
        asyncio.run_coroutine_threadsafe(self._apply(mode, delay_s), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    # --- the proxy's own loop ------------------------------------------------
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._healed = asyncio.Event()
        self._healed.set()
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def _apply(self, mode: str, delay_s: float) -> None:
        self.delay_s = delay_s
        if mode == "refuse":
            if self._server is not None:
                self._server.close()
                self._server = None
            self._cut_all()
        elif self._server is None:
            await self._listen()
        if mode == "reset":
            self._cut_all()
        if mode == "delay":
            self._healed.clear()
        else:
            self._healed.set()
        self.mode = mode

    def _cut_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._healed.set()
        self._cut_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode in ("reset", "refuse"):
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(CHUNK)
                if not data:
                    break
                if self.mode == "delay":
                    try:
                        await asyncio.wait_for(self._healed.wait(), self.delay_s)
                    except asyncio.TimeoutError:
                        pass
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not dst.transport.is_closing():
                try:
                    dst.write_eof()
                except OSError:
                    pass
