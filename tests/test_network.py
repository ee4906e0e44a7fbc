"""The test suite itself may only reach loopback."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import NetworkBlocked


@pytest.mark.parametrize("address", [("192.0.2.1", 80), ("2001:db8::1", 443, 0, 0)])
def test_connections_beyond_loopback_are_blocked(address: tuple[object, ...]) -> None:
    """Connecting to a non-loopback address fails before any packet leaves."""
    family = socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(NetworkBlocked):
        sock.connect(address)


def test_resolving_a_public_name_is_blocked() -> None:
    """A DNS lookup is a network call too, and is refused."""
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("api.openai.com", 443)


def test_loopback_connections_work() -> None:
    """A server on 127.0.0.1 can be reached."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2) as client:
            peer, _ = server.accept()
            client.sendall(b"ping")
            assert peer.recv(4) == b"ping"
            peer.close()
