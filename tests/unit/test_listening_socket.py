"""The socket the HTTP service listens on: the connections it accepts must have Nagle's
algorithm off, or a response written in two pieces (headers, then body) waits for the
client's delayed ACK, 40 ms on Linux."""

from __future__ import annotations

import asyncio
import socket

from aura_common.settings import bind_socket


async def test_accepted_connections_send_without_delay() -> None:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    sock = bind_socket("127.0.0.1", 0, "PORT")
    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        host, port = sock.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(accepted, timeout=5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
