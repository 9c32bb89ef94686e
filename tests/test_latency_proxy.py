"""The latency proxy's reading of PostgreSQL's framing: which server bytes end a turn."""

from __future__ import annotations

import struct

from benchmarks.latency_proxy import _Turns


def _message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!I", 4 + len(body)) + body


READY = _message(b"Z", b"I")
STARTUP = struct.pack("!II", 8, 196608)
SSL_REQUEST = struct.pack("!II", 8, 80877103)
ROWS = (_message(b"1") + _message(b"2") + _message(b"T", b"\0\1" + b"x" * 30)
        + _message(b"D", b"y" * 5000) + _message(b"C", b"SELECT 1\0"))


def _turns(first_client_bytes: bytes) -> _Turns:
    turns = _Turns()
    turns.client(first_client_bytes)
    return turns


def test_results_end_a_turn_only_at_ready_for_query() -> None:
    turns = _turns(STARTUP)
    assert not turns.server(ROWS)  # a pipeline's first results: the client is not waiting
    assert turns.server(ROWS + READY)


def test_messages_split_anywhere_are_followed() -> None:
    stream = ROWS + READY + ROWS
    for cut in range(1, len(stream)):
        turns = _turns(STARTUP)
        ends = [turns.server(stream[:cut]), turns.server(stream[cut:])]
        assert ends.count(True) == 1 and ends[0] == (cut > len(ROWS) + 5), cut


def test_startup_waits_for_challenges_not_for_authentication_ok() -> None:
    turns = _turns(STARTUP)
    assert not turns.server(_message(b"R", struct.pack("!I", 0)) + _message(b"S", b"a\0b\0"))
    assert turns.server(_message(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0"))


def test_an_ssl_answer_is_one_byte_and_tls_is_counted_blindly() -> None:
    refused = _turns(SSL_REQUEST)
    assert refused.server(b"N")  # then plain messages
    assert not refused.server(ROWS)
    accepted = _turns(SSL_REQUEST)
    assert accepted.server(b"S")
    assert accepted.server(b"\x16\x03\x03 encrypted")  # unreadable: every burst counts


def test_other_protocols_count_every_burst() -> None:
    turns = _turns(b"GET / HTTP/1.1\r\n")
    assert turns.server(b"HTTP/1.1 200 OK")
