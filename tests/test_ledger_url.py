"""FACE_BEAUTY_LEDGER_URL: where it is read from, what is refused, and that no secret is ever shown.

No server needed: these are the checks made before any connection.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from beauty_api.errors import ConfigurationError
from beauty_api.ledger.ledger_url import (
    LEDGER_URL_ENV,
    check_ledger_url,
    describe_ledger_url,
    load_driver,
    resolve_ledger_url,
    scrub,
)

SECRET = "s3cretPw"


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(body, encoding="utf-8")
    path.chmod(0o600)
    monkeypatch.setenv("AILAB_CONFIG_FILE", str(path))
    return path


def test_unset_means_the_local_ledger() -> None:
    assert resolve_ledger_url() is None


def test_the_environment_wins_over_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, "[ailabtools]\nledger_url = postgresql://file@db/ledger\n")
    assert resolve_ledger_url() == "postgresql://file@db/ledger"
    monkeypatch.setenv(LEDGER_URL_ENV, "  postgresql://env@db:6543/ledger  ")
    assert resolve_ledger_url() == "postgresql://env@db:6543/ledger"
    monkeypatch.setenv(LEDGER_URL_ENV, "   ")  # blank counts as unset
    assert resolve_ledger_url() == "postgresql://file@db/ledger"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://farm:{SECRET}@db.lan:5432/ledger",
        f"postgresql://farm:{SECRET.replace('3', '%33')}@db.lan:5432/ledger",
        f"postgresql://farm@db.lan:5432/ledger?password={SECRET}",
        f"postgresql://farm@db.lan:5432/ledger?sslmode=require&PassWord={SECRET}",
        f"postgresql://farm@db.lan:5432/ledger?pass%77ord={SECRET}",
        f"postgresql://farm@db.lan:5432/ledger?sslpassword={SECRET}",
    ],
)
def test_a_password_in_the_url_is_refused_without_showing_it(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEDGER_URL_ENV, url)
    with pytest.raises(ConfigurationError) as caught:
        resolve_ledger_url()
    text = str(caught.value)
    assert SECRET not in text and SECRET.replace("3", "%33") not in text
    assert "postgresql://farm@db.lan:5432/ledger" in text
    assert "PGPASSWORD" in text and "pgpass" in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://farm@db/ledger", "postgresql://"),
        ("postgresql://farm@db", "names no database"),
        ("postgresql://farm@db/a/b", "names no database"),
        ("postgresql://farm@db:99999/ledger", "cannot be parsed"),
        (f"postgresql://farm@db/ledger#{SECRET}", "fragment"),
    ],
)
def test_an_unusable_url_says_why_in_one_line(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_ledger_url(url, "the test")
    assert problem in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_describe_shows_only_scheme_user_host_port_and_database() -> None:
    assert (
        describe_ledger_url(
            f"postgresql://farm:{SECRET}@DB.lan:6543/ledger?sslmode=require&x={SECRET}#{SECRET}"
        )
        == "postgresql://farm@db.lan:6543/ledger"
    )
    assert (
        describe_ledger_url("postgres:///ledger?host=/run/postgresql") == "postgres://(local socket)/ledger"
    )
    assert describe_ledger_url("postgresql://[::1]:5/x") == "postgresql://[::1]:5/x"
    assert "cannot be parsed" in describe_ledger_url(f"postgresql://u:{SECRET}@[bad/x")


def test_scrub_keeps_the_drivers_words_but_no_secret() -> None:
    url = "postgresql://farm@db/ledger?sslmode=verify-full&application_name=topsecretname"
    message = f'FATAL:  password "{SECRET}" rejected\nfor application "topsecretname"\n'
    line = scrub(message, url, {"PGPASSWORD": SECRET})
    assert SECRET not in line and "topsecretname" not in line
    assert line.startswith("FATAL: password") and "\n" not in line


def test_a_missing_driver_is_one_clear_line_never_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(ConfigurationError) as caught:
        load_driver("postgresql://farm@db.lan/ledger")
    text = str(caught.value)
    assert "\n" not in text
    assert LEDGER_URL_ENV in text and "postgresql://farm@db.lan/ledger" in text
    assert 'pip install "face-beauty-pro[postgres]"' in text

    from beauty_api.ledger.postgres_store import PostgresStore

    with pytest.raises(ConfigurationError, match="driver is not installed"):
        PostgresStore("postgresql://farm@db.lan/ledger")
