"""A real, throw-away PostgreSQL server for the tests (Debian's ``postgresql`` package; ``make test``
installs it as root).

``PostgresServer()`` runs ``initdb`` + ``pg_ctl start`` in a fresh temporary directory, listening on
a free port on 127.0.0.1 only (unix socket in the same directory), trust auth for the superuser
``paramcast``. As root it runs the server as the ``postgres`` user (``initdb`` refuses root).
``unavailable()`` says why a server cannot be started here, or returns None.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["PostgresServer", "raw_sql", "unavailable"]

RUN_AS = "postgres"


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def unavailable() -> str | None:
    if _bindir() is None:
        return "no PostgreSQL server binaries (pg_ctl, initdb): apt-get install postgresql (make test does, as root)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run PostgreSQL as (initdb refuses root)"
        if shutil.which("runuser") is None:
            return "running as root without runuser to start PostgreSQL as another user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, *, user: str = "paramcast"):
        why = unavailable()
        if why:
            raise RuntimeError(why)
        self.bindir, self.user, self.port = _bindir(), user, _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="paramcast-pg-"))
        self.data = self.dir / "data"
        self._as = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", RUN_AS, "--"]
        try:
            self._run("initdb", "-D", str(self.data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync")
            opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir}"
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                      "-o", opts, "start")
        except BaseException:
            self.stop()
            raise

    def _run(self, tool: str, *args: str) -> None:
        res = subprocess.run([*self._as, str(self.bindir / tool), *args], capture_output=True, text=True,
                             cwd=self.dir, timeout=120)
        if res.returncode != 0:
            log = self.dir / "server.log"
            raise RuntimeError(f"{tool} failed ({res.returncode}): {res.stderr.strip()[-2000:]}"
                               + (f"\n{log.read_text()[-2000:]}" if log.exists() else ""))

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def raw_sql(target, sql: str) -> None:
    """Run one statement on a store's database behind the store's back (to corrupt a row)."""
    import sqlite3

    from paramcast.cloud.store import is_postgres_url

    if is_postgres_url(target):
        import psycopg

        with psycopg.connect(target, autocommit=True) as db:
            db.execute(sql)
        return
    db = sqlite3.connect(target)
    db.execute(sql)
    db.commit()
    db.close()
