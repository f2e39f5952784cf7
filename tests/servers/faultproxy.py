"""A fault-injecting TCP proxy for reliability tests: resets, stalls, cuts mid-transfer.

It sits between the bot and a real server (Dovecot, aiosmtpd, the fake Help Scout) on
loopback. Faults are chosen per connection, at random with a seeded generator, so a run
is repeatable. Runs its own event loop in a thread so blocking clients (imapclient) and
the asyncio worker can both use it.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field


@dataclass
class Faults:
    """Probabilities per new connection (the rest pass through untouched)."""

    reset: float = 0.0  # close at once, before any byte
    cut: float = 0.0  # forward a few hundred bytes, then close both sides mid-transfer
    stall: float = 0.0  # forward nothing for `stall_seconds`, then close
    stall_seconds: float = 5.0
    seed: int = 1


@dataclass
class ProxyStats:
    connections: int = 0
    resets: int = 0
    cuts: int = 0
    stalls: int = 0
    bytes: int = 0
    by_fault: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, faults: Faults | None = None,
                 listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.faults = faults or Faults()
        self.listen_host = listen_host
        self.port = 0
        self.stats = ProxyStats()
        self._rng = random.Random(self.faults.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_all(self) -> None:
        """Cut every open connection now (a network blip)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._drop_all)

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            self._server = await asyncio.start_server(self._handle, self.listen_host, 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        loop.run_until_complete(boot())
        try:
            loop.run_forever()
        finally:
            if self._server is not None:
                self._server.close()
            self._drop_all()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # -- connections --------------------------------------------------------------------
    def _choose(self) -> str:
        f = self.faults
        r = self._rng.random()
        for name, p in (("reset", f.reset), ("cut", f.cut), ("stall", f.stall)):
            if r < p:
                return name
            r -= p
        return "pass"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        fault = self._choose()
        self.stats.by_fault[fault] = self.stats.by_fault.get(fault, 0) + 1
        if fault == "reset":
            self.stats.resets += 1
            writer.transport.abort()
            return
        if fault == "stall":
            self.stats.stalls += 1
            await asyncio.sleep(self.faults.stall_seconds)
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        budget = self._rng.randint(40, 600) if fault == "cut" else None
        if fault == "cut":
            self.stats.cuts += 1
        state = {"budget": budget}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    if state["budget"] is not None:
                        if len(data) >= state["budget"]:
                            dst.write(data[: state["budget"]])
                            await dst.drain()
                            raise ConnectionAbortedError("cut by fault proxy")
                        state["budget"] -= len(data)
                    self.stats.bytes += len(data)
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                writer.transport.abort()
                up_writer.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)
