"""A TLS-terminating TCP proxy for the HTTPS tests: Triton's HTTP endpoint speaks plain HTTP, so
HTTPS deployments put a proxy like this (nginx, envoy, a load balancer) in front of it."""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path


class TlsProxy:
    """Accepts TLS on 127.0.0.1:<port> (optionally requiring a client certificate signed by
    `client_ca`) and pipes the decrypted bytes to 127.0.0.1:`target_port`."""

    def __init__(self, target_port: int, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self.target_port = target_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(str(client_ca))
        self.port = 0
        self.connections = 0  # TLS sessions that completed the handshake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"localhost:{self.port}"

    def start(self) -> TlsProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context), self._loop
        ).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            try:
                writer.close()
            except (ConnectionError, RuntimeError):
                pass

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> TlsProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
