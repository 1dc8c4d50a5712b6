"""`ledger serve`'s socket and server processes.

The ledger binds the listening socket itself and hands it to uvicorn, as uvicorn does with
its own: a port in use or an address this host does not have is then reported as one line
of ours (exit 1), where uvicorn would log its own line and exit 3; and the socket that was
checked is the one served, so nothing can take the port in between.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI

UVICORN_OPTIONS: dict[str, Any] = {"log_level": "warning", "access_log": False}


class ListenError(Exception):
    """The API cannot listen where it was asked to; the message says where and why."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, inheritable by uvicorn's worker processes.

    Built as uvicorn's `Config.bind_socket` builds it (IPv6 when the host has a colon,
    SO_REUSEADDR), so serving it behaves the same."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:  # gaierror too: a host name that does not resolve
        sock.close()
        raise ListenError(f"cannot listen on {address(host, port)}: {_reason(error)}") from None
    sock.set_inheritable(True)
    return sock


def address(host: str, port: int) -> str:
    """host:port as a URL writes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(error: OSError) -> str:
    """The system's words for the failure, as the rest of a sentence: `address already in
    use`, `cannot assign requested address`, `name or service not known`."""
    text = error.strerror or str(error)
    return text[:1].lower() + text[1:]


def serve_one(app: FastAPI, sock: socket.socket) -> bool:
    """Serve `app` on `sock` in this process until a signal stops it; False if the app
    did not start (uvicorn has logged why)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, **UVICORN_OPTIONS))
    server.run(sockets=[sock])
    return bool(server.started)


def serve_many(sock: socket.socket, workers: int, environ: MutableMapping[str, str]) -> None:
    """Serve `sock` from `workers` processes, each building its app from the environment
    (`ledger.api:app_from_env`); prometheus-client sums their metrics through a shared
    folder (its multiprocess mode). `environ` is `os.environ`, given the servers' URLs."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "ledger.api:app_from_env", factory=True, workers=workers, **UVICORN_OPTIONS
    )
    with tempfile.TemporaryDirectory(prefix="ledger-metrics-") as shared:
        environ.setdefault("PROMETHEUS_MULTIPROC_DIR", shared)
        Multiprocess(config, sockets=[sock]).run()
