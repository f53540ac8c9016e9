"""Defect 6 of issue 16: a secret in a configured address is never echoed, on any error path.

Every form a secret takes in an address (user:password@, ?key=, #fragment, percent-encoded)
goes through every way an address is configured (argument, environment, config file) and
every front-end that reports the error (the library, the CLI); nothing may show the secret.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from beauty_api.api.client import FaceBeautyClient
from beauty_api.cli.main import main
from beauty_api.config import normalise_base_url, resolve_base_url
from beauty_api.errors import ConfigurationError

SECRETS = ("s3cret", "s3cr%65t", "s3cr", "%65t")
ADDRESSES = (
    "https://user:s3cret@api.example.com/",
    "https://s3cret@api.example.com/",
    "https://user:s3cr%65t@api.example.com:8443/v1",
    "https://api.example.com/?key=s3cret",
    "https://api.example.com/v1?api_key=s3cr%65t&x=1",
    "https://api.example.com/#s3cret",
    "https://api.example.com/v1#key=s3cr%65t",
    "https://api.example.com/%3Fkey%3Ds3cret",
    "https://api.example.com:s3cret/",
    "https://user:s3cret@api.example.com:notaport/",
    "ftp://user:s3cret@api.example.com/",
    "  'https://user:s3cret@api.example.com/'  ",
)


def _clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_library_never_echoes_the_secret(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [
        lambda: resolve_base_url(address),
        lambda: normalise_base_url(address),
        lambda: FaceBeautyClient("k" * 20, address),
    ]
    for call in calls:
        with pytest.raises(ConfigurationError) as caught:
            call()
        _clean(str(caught.value))
        _clean(repr(caught.value.args))
        assert "s3cr" not in repr(caught.value.__context__)
    monkeypatch.setenv("AILAB_API_BASE_URL", address)
    with pytest.raises(ConfigurationError) as caught:
        resolve_base_url()
    _clean(str(caught.value))
    assert "AILAB_API_BASE_URL" in str(caught.value)


@pytest.mark.parametrize("address", ADDRESSES)
def test_a_config_file_address_is_never_echoed(
    address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.ini"
    config.write_text(f"[ailabtools]\napi_key = {'k' * 20}\nbase_url = {address.strip()}\n")
    config.chmod(0o600)
    monkeypatch.setenv("AILAB_CONFIG_FILE", str(config))
    with pytest.raises(ConfigurationError) as caught:
        resolve_base_url()
    _clean(str(caught.value))
    assert str(config) in str(caught.value)


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_cli_never_prints_the_secret(
    address: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from PIL import Image

    picture = tmp_path / "p.png"
    Image.new("RGB", (64, 64), (120, 90, 80)).save(picture)
    monkeypatch.setenv("AILAB_API_KEY", "k" * 20)
    monkeypatch.setenv("AILAB_API_BASE_URL", address)
    with caplog.at_level(logging.DEBUG):
        code = main(["-v", "retouch", str(picture), "-o", str(tmp_path / "out.png")])
    captured = capsys.readouterr()
    assert code != 0
    _clean(captured.out + captured.err + caplog.text)
    assert "AILAB_API_BASE_URL" in captured.err
