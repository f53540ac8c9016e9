"""A throwaway PostgreSQL server for tests and benchmarks: on 127.0.0.1, a free port, a temp folder.

Not a test module. `PostgresServer.start()` runs this machine's `initdb` and `pg_ctl` (Debian's
PostgreSQL 15 under /usr/lib/postgresql/15/bin, or whatever `initdb` on PATH resolves to) and
`stop()` ends the server by the pid in its postmaster.pid, then deletes the folder. PostgreSQL
refuses to run as root, and CI runs as root: there every command runs as the `postgres` system
user through `runuser -u postgres --`.

Authentication: `trust` for the superuser `postgres` on loopback (tests create databases freely),
and scram-sha-256 for the role PASSWORD_ROLE, so a test can prove that the ledger takes its
password from libpq's own sources (PGPASSWORD, ~/.pgpass) and never shows it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
PASSWORD_ROLE = "farm_pw"
REQUIRE_ENV = "FACE_BEAUTY_REQUIRE_POSTGRES"  # .ci/run sets it: a missing server fails instead of skipping
_TOOLS = ("initdb", "pg_ctl", "postgres")


def find_bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None when PostgreSQL is not installed."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates += [Path(path) for path in versions]
    for folder in candidates:
        if all((folder / tool).is_file() and os.access(folder / tool, os.X_OK) for tool in _TOOLS):
            return folder
    return None


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def unavailable_reason() -> str | None:
    """Why no test server can start here (one line), or None when it can."""
    if find_bin_dir() is None:
        return (
            "PostgreSQL is not installed (no initdb/pg_ctl/postgres on PATH or under /usr/lib/postgresql/*/bin); "
            "install Debian's `postgresql` package to run the shared-ledger tests"
        )
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _postgres_uid() is None):
        return "running as root needs `runuser` and a `postgres` system user to start PostgreSQL"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return 'the PostgreSQL driver is not installed: pip install "psycopg[binary]>=3.1"'
    return None


def _postgres_uid() -> tuple[int, int] | None:
    try:
        import pwd

        entry = pwd.getpwnam(SUPERUSER)
    except (ImportError, KeyError):
        return None
    return entry.pw_uid, entry.pw_gid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; `url(database)` is what FACE_BEAUTY_LEDGER_URL would say."""

    folder: Path
    port: int
    pid: int
    password: str
    bin_dir: Path
    options: str

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, *, durable: bool = False, max_connections: int = 100) -> PostgresServer:
        """initdb + pg_ctl start in a new temp folder. `durable` keeps fsync on (benchmarks)."""
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(unavailable_reason() or "PostgreSQL is not installed")
        folder = Path(tempfile.mkdtemp(prefix="face-beauty-pg-"))
        try:
            _hand_to_postgres(folder)
            password = os.urandom(12).hex()
            _run(bin_dir, ["initdb", "-D", str(folder / "data"), "-U", SUPERUSER, "-E", "UTF8",
                           "--locale=C", "--auth=trust", "--no-sync"], folder)  # fmt: skip
            (folder / "data" / "pg_hba.conf").write_text(
                "local all all trust\n"
                f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
                "host all all 127.0.0.1/32 trust\n",
                encoding="utf-8",
            )
            settings = {
                "listen_addresses": "127.0.0.1",
                "unix_socket_directories": str(folder),
                "max_connections": str(max_connections),
                "shared_buffers": "32MB",
                "fsync": "on" if durable else "off",
                "synchronous_commit": "on" if durable else "off",
                "full_page_writes": "on" if durable else "off",
            }
            for attempt in range(5):
                port = free_port()
                options = " ".join(
                    f"-c {key}={value}" for key, value in {**settings, "port": str(port)}.items()
                )
                log = folder / f"server-{attempt}.log"
                done = _run(bin_dir, ["pg_ctl", "-D", str(folder / "data"), "-l", str(log), "-w", "-t", "60",
                                      "-o", options, "start"], folder, check=False)  # fmt: skip
                if done.returncode == 0:
                    break
                text = log.read_text(errors="replace") if log.exists() else done.stdout
                if "could not bind" not in text and "already in use" not in text:
                    raise RuntimeError(f"PostgreSQL did not start: {text.strip()[-2000:]}")
            else:
                raise RuntimeError("PostgreSQL did not start: no free port after 5 tries")
            pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
            server = cls(folder, port, pid, password, bin_dir, options)
            server._create_password_role()
            return server
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _create_password_role(self) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN CREATEDB PASSWORD '{self.password}'")

    def create_database(self, name: str, *, owner: str = SUPERUSER) -> str:
        """A fresh, empty database; returns its URL (user `owner`, no password in it)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {owner}')
        return self.url(name, user=owner)

    def connection_count(self, database: str | None = None) -> int:
        """Client connections now open (all databases, or one), not counting the one asking."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            if database is None:
                row = conn.execute(query).fetchone()
            else:
                row = conn.execute(query + " AND datname = %s", (database,)).fetchone()
        return int(row[0]) if row else 0

    def pause(self) -> None:
        """Shut the server down by pid (fast shutdown: SIGINT) and wait until it is gone; data stays."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        end = time.monotonic() + 30
        while _alive(self.pid) and time.monotonic() < end:
            time.sleep(0.05)
        if _alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def resume(self) -> None:
        """Start a paused server again, same folder and port."""
        log = self.folder / "server-resumed.log"
        _run(self.bin_dir, ["pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "-o", self.options,
                            "start"], self.folder)  # fmt: skip
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        """Shut down by pid and delete the folder."""
        try:
            self.pause()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie no one has reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _hand_to_postgres(folder: Path) -> None:
    if os.geteuid() != 0:
        return
    ids = _postgres_uid()
    if ids is None:
        raise RuntimeError("running as root needs a `postgres` system user to start PostgreSQL")
    os.chown(folder, *ids)
    os.chmod(folder, 0o700)


def _run(bin_dir: Path, argv: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    command = [str(bin_dir / argv[0]), *argv[1:]]
    if os.geteuid() == 0:
        command = ["runuser", "-u", SUPERUSER, "--", *command]
    done = subprocess.run(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stdout.strip()[-2000:]}")
    return done
