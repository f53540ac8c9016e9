"""storage_paths: where state lives (precedence per platform) and the cache settings from the environment."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from beauty_api.errors import ConfigurationError
from beauty_api.ledger.journal import TaskJournal
from beauty_api.ledger.private_store import ensure_private_dir, move_aside
from beauty_api.ledger.result_cache import NullCache, ResultCache
from beauty_api.ledger.storage_paths import (
    CacheSettings,
    cache_dir,
    cache_settings,
    journal_path,
    legacy_comfy_dir,
    open_journal,
    open_result_cache,
    state_dir,
    user_cache_root,
)

HOME = Path("/home/someone")


def test_env_override_wins_over_everything(tmp_path: Path) -> None:
    env = {"FACE_BEAUTY_STATE_DIR": str(tmp_path / "mine"), "XDG_CACHE_HOME": "/xdg"}
    assert state_dir(environ=env) == tmp_path / "mine"


def test_env_override_expands_the_home_directory() -> None:
    env = {"FACE_BEAUTY_STATE_DIR": "~/fbp-state"}
    assert state_dir(environ=env) == Path("~/fbp-state").expanduser()


def test_one_ledger_per_user_comfyui_included(tmp_path: Path) -> None:
    env = {"FACE_BEAUTY_STATE_DIR": "  ", "XDG_CACHE_HOME": "/xdg"}
    assert state_dir(environ=env, platform="linux") == Path("/xdg/face-beauty-pro")
    assert legacy_comfy_dir(tmp_path) == tmp_path / "face_beauty_pro"  # taken over, no longer used


def test_linux_uses_xdg_cache_home_then_dot_cache() -> None:
    assert state_dir(environ={"XDG_CACHE_HOME": "/xdg"}, platform="linux", home=HOME) == Path(
        "/xdg/face-beauty-pro"
    )
    assert state_dir(environ={}, platform="linux", home=HOME) == HOME / ".cache" / "face-beauty-pro"
    # A relative XDG value is invalid per the spec and ignored.
    assert user_cache_root(environ={"XDG_CACHE_HOME": "rel"}, platform="linux", home=HOME) == HOME / ".cache"


def test_macos_uses_library_caches() -> None:
    assert user_cache_root(environ={"XDG_CACHE_HOME": "/xdg"}, platform="darwin", home=HOME) == (
        HOME / "Library" / "Caches"
    )


def test_windows_uses_localappdata() -> None:
    env = {"LOCALAPPDATA": r"C:\Users\someone\AppData\Local"}
    assert user_cache_root(environ=env, platform="win32", home=HOME) == Path(env["LOCALAPPDATA"])
    assert user_cache_root(environ={}, platform="win32", home=HOME) == HOME / "AppData" / "Local"


def test_default_reads_the_real_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACE_BEAUTY_STATE_DIR", str(tmp_path / "x"))
    assert state_dir() == tmp_path / "x"
    monkeypatch.delenv("FACE_BEAUTY_STATE_DIR")
    assert state_dir().name == "face-beauty-pro"


def test_files_inside_the_state_dir(tmp_path: Path) -> None:
    assert journal_path(tmp_path) == tmp_path / "journal.sqlite3"
    assert cache_dir(tmp_path) == tmp_path / "cache"


# -- settings ----------------------------------------------------------------------------------


def test_cache_settings_defaults() -> None:
    assert cache_settings({}) == CacheSettings(True, 2048 * 1024 * 1024, 30 * 24 * 3600.0)


@pytest.mark.parametrize("value", ["0", "off", "OFF", "false", "No", " no "])
def test_cache_can_be_switched_off(value: str) -> None:
    assert cache_settings({"FACE_BEAUTY_CACHE": value}).enabled is False


@pytest.mark.parametrize("value", ["", "1", "on", "true", "YES"])
def test_cache_on_values(value: str) -> None:
    assert cache_settings({"FACE_BEAUTY_CACHE": value}).enabled is True


def test_cache_limits_from_env() -> None:
    settings = cache_settings({"FACE_BEAUTY_CACHE_MAX_MB": "512", "FACE_BEAUTY_CACHE_MAX_DAYS": "0.5"})
    assert settings.max_bytes == 512 * 1024 * 1024
    assert settings.max_age == 12 * 3600.0


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("FACE_BEAUTY_CACHE", "maybe", "0, off, false or no"),
        ("FACE_BEAUTY_CACHE_MAX_MB", "2GB", "whole number of megabytes"),
        ("FACE_BEAUTY_CACHE_MAX_MB", "-5", "whole number of megabytes"),
        ("FACE_BEAUTY_CACHE_MAX_MB", "1.5", "whole number of megabytes"),
        ("FACE_BEAUTY_CACHE_MAX_DAYS", "a week", "number of days > 0"),
        ("FACE_BEAUTY_CACHE_MAX_DAYS", "0", "number of days > 0"),
        ("FACE_BEAUTY_CACHE_MAX_DAYS", "nan", "number of days > 0"),
        ("FACE_BEAUTY_CACHE_MAX_DAYS", "inf", "number of days > 0"),
    ],
)
def test_malformed_values_name_the_variable_and_the_expected_form(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        cache_settings({name: value})
    assert name in str(info.value) and expected in str(info.value)


# -- opening the stores ------------------------------------------------------------------------


def test_open_result_cache_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACE_BEAUTY_CACHE_MAX_MB", "1")
    monkeypatch.setenv("FACE_BEAUTY_CACHE_MAX_DAYS", "2")
    cache = open_result_cache(tmp_path)
    assert isinstance(cache, ResultCache)
    assert cache.directory == tmp_path / "cache"
    assert (cache.max_bytes, cache.max_age) == (1024 * 1024, 2 * 24 * 3600.0)
    monkeypatch.setenv("FACE_BEAUTY_CACHE", "off")
    assert isinstance(open_result_cache(tmp_path), NullCache)


def test_an_explicit_switch_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FACE_BEAUTY_CACHE", "off")
    assert isinstance(open_result_cache(tmp_path, enabled=True), ResultCache)
    monkeypatch.setenv("FACE_BEAUTY_CACHE", "garbage")  # not even read when the caller decided
    assert isinstance(open_result_cache(tmp_path, enabled=False), NullCache)
    assert isinstance(open_result_cache(tmp_path, enabled=True), ResultCache)


def test_open_result_cache_raises_for_a_malformed_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FACE_BEAUTY_CACHE_MAX_MB", "lots")
    with pytest.raises(ConfigurationError, match="FACE_BEAUTY_CACHE_MAX_MB"):
        open_result_cache(tmp_path)
    assert isinstance(open_result_cache(tmp_path, enabled=False), NullCache)


def test_an_unusable_cache_directory_degrades_to_null_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file, not a directory")
    with caplog.at_level(logging.WARNING, logger="beauty_api"):
        assert isinstance(open_result_cache(blocker), NullCache)
    assert "cannot be used" in caplog.text


def test_open_journal_places_it_in_the_state_dir(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "s")
    assert isinstance(journal, TaskJournal)
    assert journal.path == tmp_path / "s" / "journal.sqlite3"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_created_directories_are_private_and_existing_ones_untouched(tmp_path: Path) -> None:
    created = ensure_private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(created.stat().st_mode) & 0o077 == 0
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    ensure_private_dir(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755


def test_move_aside_takes_the_wal_companions_along(tmp_path: Path) -> None:
    tmp_path = ensure_private_dir(tmp_path / "moved")
    db = tmp_path / "x.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).write_text(suffix or "main")
    target = move_aside(db, now=1234)
    assert target == tmp_path / "x.sqlite3.corrupt-1234"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "x.sqlite3.corrupt-1234",
        "x.sqlite3.corrupt-1234-shm",
        "x.sqlite3.corrupt-1234-wal",
    ]
    db.write_text("again")
    assert move_aside(db, now=1234) == tmp_path / "x.sqlite3.corrupt-1234-1"
