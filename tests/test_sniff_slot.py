"""A connection that closes during the first second's sniff frees its slot at once."""

from __future__ import annotations

from typing import Final

import trio

from tests.conftest import StartServer
from tests.helpers import Peer

HOLD_S: Final = 30.0  # --flush-timeout here: a slot held that long is plainly held
WAIT_S: Final = 5.0  # real seconds the slot may take to come back (a loaded machine)
POLL_S: Final = 0.01


async def test_sniff_close_frees_the_per_address_slot_at_once(
    nursery: trio.Nursery, start_server: StartServer
) -> None:
    """Closing before the first line used to hold the slot for --flush-timeout (nothing
    was queued to flush); the next connection from that address was refused meanwhile."""
    server = await start_server(max_per_address=1, trusted=(), flush_timeout=HOLD_S)
    listeners = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    for _ in range(3):  # connect and leave without a word, again and again
        silent = await trio.open_tcp_stream("127.0.0.1", port)
        for _ in range(int(WAIT_S / POLL_S)):
            if server.connections == 1:
                break
            await trio.sleep(POLL_S)
        await silent.aclose()
        for _ in range(int(WAIT_S / POLL_S)):
            if server.connections == 0:
                break
            await trio.sleep(POLL_S)
        assert server.connections == 0, "the silent connection still holds its slot"
    peer = Peer(await trio.open_tcp_stream("127.0.0.1", port))
    await peer.send("/nick after")
    with trio.fail_after(WAIT_S):
        assert (await peer.line()).startswith("*** welcome, after!")
    await peer.stream.aclose()
    with trio.fail_after(HOLD_S):
        await server.shutdown()
