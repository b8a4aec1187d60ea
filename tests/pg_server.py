"""A real, throwaway PostgreSQL server for the store tests, and the ``backend`` fixture (SQLite | PostgreSQL).

Adapted from ``../shared/reference/postgres/pg-temp.sh``: Debian's ``initdb`` / ``pg_ctl`` into a
temporary folder, 127.0.0.1 only, a free port, the Unix socket in that folder. PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` user through ``runuser``. ``make test``
installs the package when ``initdb`` is missing; elsewhere the PostgreSQL tests are skipped with the
reason, unless ``OAL_REQUIRE_POSTGRES=1`` (then they fail).

Authentication: the superuser ``postgres`` is trusted (the fixtures' admin connection); every other
role needs its password (scram-sha-256), so the credential tests meet a server that asks for one.

A test module loads these fixtures with ``pytest_plugins = ["pg_server"]`` (a plugin is loaded once
per run, so the session's server is shared by every module).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

_counter = itertools.count()


def bindir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()],
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One server in its own folder: ``start()``, ``stop(mode)``, ``url(db)``, ``create_database()``."""

    HBA = (
        "local all postgres trust\n"
        "host all postgres 127.0.0.1/32 trust\n"
        "local all all scram-sha-256\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )

    def __init__(self):
        self.bin = bindir()
        if self.bin is None:
            raise RuntimeError(
                "no /usr/lib/postgresql/*/bin/initdb: apt-get install postgresql (make test does)"
            )
        self._as_postgres = os.geteuid() == 0
        # /tmp when root: the postgres user must reach the folder (a TMPDIR under /root it cannot).
        self.root = Path(tempfile.mkdtemp(prefix="oal-pg.", dir="/tmp" if self._as_postgres else None))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = _free_port()
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N", "-E", "UTF8")
        (self.data / "pg_hba.conf").write_text(self.HBA)
        if self._as_postgres:
            shutil.chown(self.data / "pg_hba.conf", "postgres")
        self.running = False
        atexit.register(self.close)

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o", options, "start"
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: like a crash (recovery on the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def url(self, db: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def admin(self, sql: str, args=(), db: str = "postgres"):
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            cur = conn.execute(sql, args or None)  # no args: a literal % stays literal
            return cur.fetchall() if cur.description else None

    def create_database(self, prefix: str = "t", owner: str | None = None) -> str:
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        self.admin(f"CREATE DATABASE {name}" + (f" OWNER {owner}" if owner else ""))
        return name

    def drop_database(self, name: str) -> None:
        if self.running:
            self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        if self.running:
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def _server_or_skip() -> PgServer:
    if bindir() is None:
        message = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): make test installs it"
        if os.environ.get("OAL_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = PgServer()
    server.start()
    return server


@pytest.fixture(scope="session")
def pg_server():
    """The shared server (trust for ``postgres``, passwords for every other role). Never stopped by tests."""
    server = _server_or_skip()
    yield server
    server.close()


@pytest.fixture(scope="module")
def pg_restartable():
    """A server of the module's own, which its tests may stop and start."""
    server = _server_or_skip()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server):
    """A fresh database on the shared server, as a URL; dropped afterwards."""
    db = pg_server.create_database()
    yield pg_server.url(db)
    pg_server.drop_database(db)


class Backend:
    """One place where labels live (a workdir, or a database); ``open()`` starts a new session on it."""

    def __init__(self, name: str, location: str, images: Path, project: str = "proj"):
        self.name, self.location, self.images, self.project = name, location, images, project
        self._open: list = []

    @property
    def store_arg(self) -> str | None:
        return self.location if self.name == "postgres" else None

    def open(self, *, annotator: str = "alice", project: str | None = "", **kw):
        from oal_widget.data.store import open_store

        project = self.project if project == "" else project
        store = open_store(
            self.store_arg, workdir=self.location if self.name == "sqlite" else None, images_root=self.images,
            project=project, annotator=annotator, **kw,
        )  # fmt: skip
        self._open.append(store)
        return store

    def history(self, columns: str) -> list[tuple]:
        """``columns`` of this project's history rows, oldest first."""
        return self.sql(
            f"SELECT {columns} FROM history h JOIN projects p ON p.id = h.project_id WHERE p.name = ? "
            "ORDER BY h.id",
            (self.project,),
        )

    def sql(self, query: str, args=()):
        """Raw SQL on the backend's database (``?`` placeholders): to look inside or write junk by hand.

        On PostgreSQL the database is shared by the tests of a run: filter by ``project``."""
        if self.name == "sqlite":
            import sqlite3

            from oal_widget.data.store import FILENAME

            with sqlite3.connect(Path(self.location) / FILENAME) as db:
                return db.execute(query, args).fetchall()
        import psycopg

        with psycopg.connect(self.location, autocommit=True) as conn:
            conn.execute("SET search_path TO oal_widget")
            cur = conn.execute(query.replace("?", "%s"), args)
            return cur.fetchall() if cur.description else None

    def close_all(self) -> None:
        for store in self._open:
            store.close()


@pytest.fixture(scope="session")
def pg_shared_url(pg_server):
    """One database for the ``backend`` tests of a run; each test has a project of its own in it
    (projects share nothing), which costs nothing, where a database per test costs ~0.2 s."""
    return pg_server.url(pg_server.create_database("shared"))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """The store tests run twice: on a SQLite workdir, and on a new project in a PostgreSQL database."""
    images = tmp_path / "images"
    images.mkdir()
    if request.param == "sqlite":
        b = Backend("sqlite", str(tmp_path / "work"), images)
    else:
        b = Backend("postgres", request.getfixturevalue("pg_shared_url"), images, f"proj_{next(_counter)}")
    yield b
    b.close_all()
