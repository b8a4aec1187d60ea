"""Passwords stay secret: never in a message, repr, log line or export; libpq's usual places work
(PGPASSWORD, a .pgpass file via PGPASSFILE, a service file via PGSERVICEFILE / PGSERVICE), against a
server that refuses a role without its password (scram-sha-256)."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import quote

import pytest
from psycopg import sql

from oal_widget.cli import main
from oal_widget.data.store import StoreUnavailable, mask_url, open_store
from oal_widget.data.store.urls import scrub, secrets_of

pytest_plugins = ["pg_server"]

PASSWORD = "p@ss:w/rd%?#é-7Q"  # every character a URL or a .pgpass file treats specially
LIBPQ_ENV = ("PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE", "PGSERVICE", "PGUSER", "PGHOST", "PGDATABASE")


@pytest.fixture
def role(pg_server, monkeypatch):
    """(role, database) on the shared server: the role logs in only with PASSWORD."""
    for name in LIBPQ_ENV:
        monkeypatch.delenv(name, raising=False)
    name = f"cred_{uuid.uuid4().hex[:8]}"
    pg_server.admin(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
        .format(sql.Identifier(name), sql.Literal(PASSWORD))
        .as_string()
    )
    db = pg_server.create_database(owner=name)
    yield name, db
    pg_server.drop_database(db)


def url(pg_server, role, db, password: str | None = PASSWORD) -> str:
    auth = role if password is None else f"{role}:{quote(password, safe='')}"
    return f"postgresql://{auth}@127.0.0.1:{pg_server.port}/{db}"


def assert_secret(text: str) -> None:
    for secret in (
        PASSWORD,
        quote(PASSWORD, safe=""),
        "wrong-" + PASSWORD,
        quote("wrong-" + PASSWORD, safe=""),
    ):
        assert secret not in text


# --- masking ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:se@c/r:et@h/db", "postgres://u:***@h/db"),  # '@' and '/' inside the password
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?password=secret&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
        ("postgresql://u:secret@[::1]:5432,h2:5433/db", "postgresql://u:***@[::1]:5432,h2:5433/db"),
        ("postgresql://", "postgresql://"),
        ("host=db user=me password=secret", "host=db user=me password=***"),  # libpq's keyword form
        ("password = 'se cret' host=db", "password = *** host=db"),
        ("host=db password='se cret", "host=db password=***"),  # an unclosed quote: all of it
        ("host=db sslpassword=secret", "host=db sslpassword=***"),
        ("postgresql://h/db?sslpassword=secret", "postgresql://h/db?sslpassword=***"),
    ],
)
def test_mask_url(raw, masked):
    assert mask_url(raw) == masked
    assert "secret" not in mask_url(raw) and "se@c/r:et" not in mask_url(raw)


def test_a_keyword_form_store_is_refused_without_its_password(tmp_path):
    from oal_widget.data.store import open_store

    with pytest.raises(ValueError) as e:
        open_store(store="host=db user=me password=secret", workdir=tmp_path)
    assert "secret" not in str(e.value) and "password=***" in str(e.value)
    assert secrets_of("host=db password='se cret'") == ["se cret"]


def test_scrub_removes_raw_and_percent_encoded_passwords():
    raw = f"postgresql://u:{quote(PASSWORD, safe='')}@h/db"
    text = f"libpq said: {PASSWORD} / {quote(PASSWORD, safe='')}"
    assert_secret(scrub(text, secrets_of(raw)))


# --- a password in the URL --------------------------------------------------------------------------
def test_the_password_never_shows(pg_server, role, tmp_path, caplog):
    name, db = role
    caplog.set_level(logging.DEBUG)
    with open_store(url(pg_server, name, db), project="p", annotator="alice") as store:
        store.set_label_names(["cat"])
        store.label("a.png", "cat")
        shown = [repr(store), str(store.path), store.url, store.location_text(), str(store.records())]
        assert f"postgresql://{name}:***@127.0.0.1:{pg_server.port}/{db}" in shown
        for out in ("l.csv", "l.json"):
            assert (
                main(["export", url(pg_server, name, db), "--project", "p", "--out", str(tmp_path / out)])
                == 0
            )
            shown.append((tmp_path / out).read_text(encoding="utf-8"))
    with pytest.raises(StoreUnavailable) as info:
        open_store(url(pg_server, name, db, "wrong-" + PASSWORD), project="p")
    message = str(info.value)
    assert f"postgresql://{name}:***@127.0.0.1:{pg_server.port}/{db}" in message
    assert "password authentication failed" in message
    for text in [*shown, message, caplog.text]:
        assert_secret(text)


def test_a_malformed_url_is_a_clear_error_without_the_password(pg_server, role):
    name, db = role
    bad = url(pg_server, name, db) + "?nonsense_option=1"
    with pytest.raises(ValueError, match=r"store URL .*:\*\*\*@.* is invalid") as info:
        open_store(bad, project="p")
    assert_secret(str(info.value))


def test_the_server_really_asks_for_the_password(pg_server, role):
    name, db = role
    with pytest.raises(StoreUnavailable, match="no password supplied|password authentication failed"):
        open_store(url(pg_server, name, db, password=None), project="p")


# --- libpq's usual places -----------------------------------------------------------------------------
def check_works(store_url: str) -> None:
    with open_store(store_url, project="p", annotator="alice") as store:
        store.set_label_names(["cat"])
        store.label("a.png", "cat")
        assert store.labels() == {"a.png": "cat"}
        assert_secret(repr(store))


def test_pgpassword(pg_server, role, monkeypatch):
    name, db = role
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    check_works(url(pg_server, name, db, password=None))


def test_pgpass_file(pg_server, role, monkeypatch, tmp_path):
    name, db = role
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_server.port}:{db}:{name}:{escaped}\n")
    passfile.chmod(0o600)  # libpq ignores a file others can read
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    check_works(url(pg_server, name, db, password=None))


def test_service_file(pg_server, role, monkeypatch, tmp_path):
    name, db = role
    service = tmp_path / "pg_service.conf"
    service.write_text(
        f"[oal_team]\nhost=127.0.0.1\nport={pg_server.port}\ndbname={db}\nuser={name}\npassword={PASSWORD}\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(service))
    check_works("postgresql:///?service=oal_team")  # the service named in the URL
    monkeypatch.setenv("PGSERVICE", "oal_team")
    with open_store("postgresql://", project="p") as store:  # or in the environment
        assert store.labels() == {"a.png": "cat"} and store.url == "postgresql://"
