"""config: key and base URL precedence, the config file, ApiKey redaction, and the missing-key message."""

from __future__ import annotations

import copy
import logging
import os
import pickle
from pathlib import Path

import pytest

from beauty_api import config
from beauty_api.config import (
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_CONFIG_FILE,
    ApiKey,
    config_search_paths,
    resolve_api_key,
    resolve_base_url,
)
from beauty_api.errors import ConfigurationError

SECRET = "sk-TEST-SECRET-0123456789abcdef"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real env key, no real config file: the pack root and XDG dir point into tmp_path."""
    for name in (ENV_API_KEY, ENV_BASE_URL, ENV_CONFIG_FILE):
        monkeypatch.delenv(name, raising=False)
    pack = tmp_path / "pack"
    pack.mkdir()
    monkeypatch.setattr(config, "PACK_ROOT", pack)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(config, "_warned_paths", set())
    return tmp_path


def write_config(path: Path, body: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    path.chmod(mode)
    return path


def pack_file() -> Path:
    return config.PACK_ROOT / "ailab_config.ini"


def xdg_file(tmp: Path) -> Path:
    return tmp / "xdg" / "face-beauty-pro" / "config.ini"


# -- ApiKey -------------------------------------------------------------------------------------


def test_api_key_is_redacted_everywhere(caplog):
    key = ApiKey(SECRET)
    assert key.reveal() == SECRET
    texts = [repr(key), str(key), f"{key}", f"{key!r}", f"{key:>40}", "%s" % key]  # noqa: UP031
    texts.append(repr([key, {"k": key}]))
    with caplog.at_level(logging.DEBUG, logger="beauty_api"):
        logging.getLogger("beauty_api").debug("key is %s / %r", key, key)
    texts += [record.getMessage() for record in caplog.records]
    for text in texts:
        assert SECRET not in text
        assert "redacted" in text


def test_api_key_equality_hash_and_immutability():
    assert ApiKey(SECRET) == ApiKey(f"  '{SECRET}'\n")
    assert ApiKey(SECRET) != ApiKey(SECRET + "x")
    assert ApiKey(SECRET) != SECRET  # not equal to the bare string: no accidental comparisons
    assert hash(ApiKey(SECRET)) == hash(ApiKey(SECRET))
    with pytest.raises(AttributeError):
        ApiKey(SECRET)._value = "other"


def test_api_key_refuses_pickling_but_copies():
    key = ApiKey(SECRET)
    with pytest.raises(TypeError) as info:
        pickle.dumps(key)
    assert SECRET not in str(info.value)
    assert copy.copy(key) is key
    assert copy.deepcopy({"k": key})["k"] is key


@pytest.mark.parametrize("bad", ["abc def", "abc\ndef", "abc\tdef", "clé-123", "abc\x7fdef"])
def test_broken_key_is_refused_without_showing_it(monkeypatch, bad):
    monkeypatch.setenv(ENV_API_KEY, bad)
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key()
    assert bad not in str(info.value)
    assert ENV_API_KEY in str(info.value)


def test_empty_api_key_object_refused():
    with pytest.raises(ConfigurationError):
        ApiKey("  ''  ")


# -- key precedence and the config file ---------------------------------------------------------


def test_key_precedence_explicit_env_file(monkeypatch):
    write_config(pack_file(), "[ailabtools]\napi_key = from-file\n")
    assert resolve_api_key().reveal() == "from-file"
    monkeypatch.setenv(ENV_API_KEY, ' "from-env" ')
    assert resolve_api_key().reveal() == "from-env"
    assert resolve_api_key("explicit").reveal() == "explicit"
    key = ApiKey("object")
    assert resolve_api_key(key) is key


def test_blank_explicit_key_falls_through_to_env(monkeypatch):
    monkeypatch.setenv(ENV_API_KEY, "from-env")
    assert resolve_api_key("   ").reveal() == "from-env"
    monkeypatch.setenv(ENV_API_KEY, "  ")
    write_config(pack_file(), "[ailabtools]\napi_key = from-file\n")
    assert resolve_api_key("").reveal() == "from-file"


def test_missing_key_message_says_exactly_what_to_do():
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key()
    text = str(info.value)
    for needle in (
        "AILAB_API_KEY=<your key>",
        "restart ComfyUI",
        "[ailabtools]",
        "api_key = <your key>",
        str(pack_file()),
        "https://www.ailabtools.com",
        "python -m beauty_api demo",
    ):
        assert needle in text, needle


def test_missing_key_mentions_a_file_without_the_section(isolated):
    write_config(xdg_file(isolated), "[other]\napi_key = nope\n")
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key()
    assert "no [ailabtools] section" in str(info.value)
    assert "nope" not in str(info.value)


def test_config_file_parsing_quotes_bom_percent(isolated):
    path = pack_file()
    path.write_bytes(
        b"\xef\xbb\xbf[ailabtools]\napi_key = 'abc%def'\nbase_url = https://proxy.example/ailab/\n"
    )
    path.chmod(0o600)
    assert resolve_api_key().reveal() == "abc%def"
    assert resolve_base_url() == "https://proxy.example/ailab"


def test_pack_file_wins_over_xdg_and_xdg_is_a_fallback(isolated):
    write_config(xdg_file(isolated), "[ailabtools]\napi_key = from-xdg\n")
    assert resolve_api_key().reveal() == "from-xdg"
    write_config(pack_file(), "[ailabtools]\napi_key = from-pack\n")
    assert resolve_api_key().reveal() == "from-pack"


def test_env_config_file_is_used_alone(monkeypatch, isolated):
    write_config(pack_file(), "[ailabtools]\napi_key = from-pack\n")
    chosen = write_config(isolated / "elsewhere.ini", "[ailabtools]\napi_key = from-chosen\n")
    monkeypatch.setenv(ENV_CONFIG_FILE, str(chosen))
    assert config_search_paths() == [chosen]
    assert resolve_api_key().reveal() == "from-chosen"
    monkeypatch.setenv(ENV_CONFIG_FILE, str(isolated / "missing.ini"))
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key()
    assert "missing.ini" in str(info.value)
    assert "from-pack" not in str(info.value)


def test_search_paths_default(isolated):
    assert config_search_paths() == [pack_file(), xdg_file(isolated)]


def test_xdg_default_is_home_config(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_search_paths()[1] == tmp_path / "home" / ".config" / "face-beauty-pro" / "config.ini"


def test_invalid_ini_does_not_echo_the_key():
    write_config(pack_file(), f"api_key = {SECRET}\n")  # no section header
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key()
    assert SECRET not in str(info.value)
    assert "line 1" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_broken_key_in_file_names_the_file_not_the_key():
    write_config(pack_file(), "[ailabtools]\napi_key = abc def\n")
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key()
    assert str(pack_file()) in str(info.value)
    assert "abc def" not in str(info.value)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_world_readable_config_warns_once_without_the_key(caplog):
    write_config(pack_file(), f"[ailabtools]\napi_key = {SECRET}\n", mode=0o644)
    with caplog.at_level(logging.DEBUG, logger="beauty_api"):
        resolve_api_key()
        resolve_api_key()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "chmod 600" in warnings[0].getMessage()
    assert all(SECRET not in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_private_config_does_not_warn(caplog):
    write_config(pack_file(), "[ailabtools]\napi_key = k\n", mode=0o600)
    with caplog.at_level(logging.WARNING, logger="beauty_api"):
        resolve_api_key()
    assert not caplog.records


# -- base URL ----------------------------------------------------------------------------------


def test_base_url_precedence_and_default(monkeypatch):
    assert resolve_base_url() == DEFAULT_BASE_URL
    write_config(pack_file(), "[ailabtools]\nbase_url = https://file.example\n")
    assert resolve_base_url() == "https://file.example"
    monkeypatch.setenv(ENV_BASE_URL, "http://127.0.0.1:8080/")
    assert resolve_base_url() == "http://127.0.0.1:8080"
    assert resolve_base_url("https://explicit.example///") == "https://explicit.example"
    assert resolve_base_url("  ") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    "bad",
    [
        "www.ailabapi.com",
        "ftp://www.ailabapi.com",
        "https://",
        "https://user:pw@www.ailabapi.com",
        "https://www.ailabapi.com/?x=1",
        "https://www.ailabapi.com/#frag",
        "http://host:99999",
        "https://host name",
    ],
)
def test_bad_base_url_is_refused(bad):
    with pytest.raises(ConfigurationError) as info:
        resolve_base_url(bad)
    assert "http" in str(info.value)


def test_bad_base_url_from_env_names_the_variable(monkeypatch):
    monkeypatch.setenv(ENV_BASE_URL, "not a url")
    with pytest.raises(ConfigurationError) as info:
        resolve_base_url()
    assert ENV_BASE_URL in str(info.value)


def test_explicit_key_with_control_character_is_refused():
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key("abc\x00def")
    assert "abc" not in str(info.value)


def test_normalise_base_url_gives_one_text_per_address():
    from beauty_api.config import normalise_base_url

    same = ["https://www.ailabapi.com", "HTTPS://WWW.AILABAPI.COM/", "https://www.ailabapi.com:443"]
    assert {normalise_base_url(url) for url in same} == {"https://www.ailabapi.com:443"}
    assert normalise_base_url("http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    assert normalise_base_url("http://[::1]/gw/v2/") == "http://[::1]:80/gw/v2"
    different = ["http://www.ailabapi.com", "https://www.ailabapi.com:8443", "https://www.ailabapi.com/gw"]
    assert len({normalise_base_url(url) for url in [same[0], *different]}) == 4
    with pytest.raises(ConfigurationError):
        normalise_base_url("ftp://host")
