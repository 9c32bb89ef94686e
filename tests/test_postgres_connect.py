"""Connecting to PostgreSQL: errors name the server, never the password; pool statistics."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from genesis.database import DatabaseConfig, DatabaseURL, OperationalError, create_store
from genesis.database.protocol import ProgramStore
from tests.factories import make_program

PASSWORD = "pa:ss/w%rd-7731"
SSL_OR_GSS_REQUESTS = (80877103, 80877104)


def _url(port: int) -> DatabaseURL:
    return DatabaseURL(backend="postgresql", host="127.0.0.1", port=port, user="genesis",
                       password=PASSWORD, database="genesis")


def _messages(exc: BaseException) -> str:
    """Every message and repr in an exception chain."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def _assert_names_server_not_password(exc: BaseException, port: int) -> None:
    text = _messages(exc)
    assert f"127.0.0.1:{port}" in str(exc)
    for secret in (PASSWORD, "pa%3Ass%2Fw%25rd-7731", "w%rd"):
        assert secret not in text


async def test_closed_port_error_names_host_and_port_not_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = create_store(_url(port), DatabaseConfig(pool_timeout=3.0))
    with pytest.raises(OperationalError) as info:
        await store.open()
    _assert_names_server_not_password(info.value, port)


async def _reject_password(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           received: list[bytes]) -> None:
    """Speak just enough of the PostgreSQL protocol to ask for a password and refuse it."""
    try:
        while True:
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            payload = await reader.readexactly(length - 4)
            if struct.unpack("!I", payload[:4])[0] not in SSL_OR_GSS_REQUESTS:
                break  # the startup message
            writer.write(b"N")
        writer.write(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        await writer.drain()
        await reader.readexactly(1)
        (length,) = struct.unpack("!I", await reader.readexactly(4))
        received.append(await reader.readexactly(length - 4))
        fields = (b"SFATAL\0VFATAL\0C28P01\0"
                  b'Mpassword authentication failed for user "genesis"\0\0')
        writer.write(b"E" + struct.pack("!I", len(fields) + 4) + fields)
        await writer.drain()
    finally:
        writer.close()


async def test_wrong_password_error_names_host_and_port_not_password() -> None:
    received: list[bytes] = []
    server = await asyncio.start_server(
        lambda r, w: _reject_password(r, w, received), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(OperationalError, match="password authentication failed") as info:
            await create_store(_url(port), DatabaseConfig(pool_timeout=3.0)).open()
    assert received == [PASSWORD.encode() + b"\0"]  # the password was sent to the server...
    _assert_names_server_not_password(info.value, port)  # ...and never shown


@pytest.fixture
async def small_pool_store(store_url: DatabaseURL) -> AsyncIterator[ProgramStore]:
    """A PostgreSQL store whose pool keeps two connections open."""
    config = DatabaseConfig(pool_min_size=2, pool_max_size=3)
    async with create_store(store_url, config) as store:
        yield store


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_stats_report_pool_and_relation_sizes(small_pool_store: ProgramStore) -> None:
    await small_pool_store.add_many([make_program(embedding_dim=32) for _ in range(20)])
    stats = await small_pool_store.stats()
    pool = stats["pool"]
    assert (pool["pool_min"], pool["pool_max"]) == (2, 3)
    assert pool["pool_size"] >= 2
    assert pool["requests_num"] >= 1
    assert stats["tables"]["programs"]["total_bytes"] > stats["tables"]["programs"]["heap_bytes"]
    assert {"programs_pkey", "idx_programs_metadata", "idx_programs_source_job_id"} <= set(
        stats["indexes"])
    assert stats["schema"] == f"genesis_{small_pool_store.url.run}"
    assert "password" not in repr(stats)
