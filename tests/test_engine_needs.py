"""Issue 19, items 5 and 6: what the offline engine needs (one line without torch or kornia, the kornia
floor), and the smaller items (gray Face Mask input, the offline NaN message, thread counts, settings)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from local_helpers import portrait
from pack_loader import PACK_NAME, load_pack
from PIL import Image

from beauty_api.cli import main
from beauty_api.codec import image_input
from beauty_api.errors import ImageError
from beauty_api.local import needs
from beauty_api.local.retouch import tone
from beauty_api.local.retouch.engine import LocalEngine
from beauty_api.params import BeautyParams

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = textwrap.dedent(
    """
    import sys

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked}:
                raise ImportError("No module named " + repr(name))
            return None

    sys.meta_path.insert(0, Blocked())
    sys.path.insert(0, {root!r})
    from beauty_api.cli import main
    raise SystemExit(main(sys.argv[1:]))
    """
)


def _cli_without(blocked: set[str], *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = BLOCKER.format(blocked=sorted(blocked), root=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("blocked", [{"torch", "kornia"}, {"kornia"}])
def test_offline_commands_say_in_one_line_what_to_install(tmp_path: Path, blocked: set[str]) -> None:
    photo = tmp_path / "in.png"
    Image.fromarray(np.asarray(portrait("astronaut"))).save(photo)
    for argv in (
        ("retouch", "--backend", "local", str(photo), "-o", str(tmp_path / "out.png")),
        ("landmarks", str(photo), "-o", str(tmp_path / "marks.png")),
    ):
        done = _cli_without(blocked, *argv, cwd=tmp_path)
        lines = [line for line in done.stderr.splitlines() if not line.startswith("settings (")]
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert 'pip install torch "kornia>=0.7.1"' in lines[0] and "kornia" in lines[0]
        assert not (tmp_path / "out.png").exists()
    demo = _cli_without(blocked, "demo", "-o", str(tmp_path / "demo"), cwd=tmp_path)
    assert demo.returncode == 0 and "Traceback" not in demo.stderr, demo.stderr
    assert "stand-in" in demo.stdout


def test_a_kornia_older_than_the_floor_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert needs.missing() == []
    monkeypatch.setitem(sys.modules, "kornia", types.SimpleNamespace(__version__="0.6.12"))
    assert needs.missing() == ["kornia >= 0.7.1 (found 0.6.12)"]
    with pytest.raises(
        needs.EngineUnavailable, match=r"needs kornia >= 0\.7\.1 \(found 0\.6\.12\).*pip install"
    ):
        needs.require()


def test_the_smoothing_filter_is_kornias_guided_blur_away_from_the_border() -> None:
    """tone.self_guided_filter (running sums) gives kornia's guided blur, which any kornia from 0.7.1
    has; only the outermost `radius` pixels differ (edges repeated there, not mirrored)."""
    import kornia.filters

    crop = torch.from_numpy(np.array(portrait("astronaut")[60:220, 150:300])).permute(2, 0, 1).float() / 255
    radius = 4
    ours = tone.self_guided_filter(crop, radius, tone.SMOOTH_EPS)
    theirs = kornia.filters.guided_blur(crop[:, None], crop[:, None], 2 * radius + 1, tone.SMOOTH_EPS)[:, 0]
    inner = (slice(None), slice(2 * radius, -2 * radius), slice(2 * radius, -2 * radius))
    assert (ours[inner] - theirs[inner]).abs().max() < 1e-4
    assert (ours - crop).abs().mean() > 0.003  # it does smooth
    # the fast guided filter (coefficients from every second pixel): kornia's too
    fast = tone.self_guided_filter(crop, radius, tone.SMOOTH_EPS, subsample=2)
    kornia_fast = kornia.filters.guided_blur(
        crop[:, None], crop[:, None], 2 * radius + 1, tone.SMOOTH_EPS, subsample=2
    )[:, 0]
    assert (fast[inner] - kornia_fast[inner]).abs().max() < 0.5 / 255  # within half an 8-bit level


def test_nodes_say_in_one_line_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    pack = load_pack()
    node = pack.NODE_CLASS_MAPPINGS["FaceBeautyFaceMask"]()
    import importlib

    pack_needs = importlib.import_module(f"{PACK_NAME}.beauty_api.local.needs")
    monkeypatch.setattr(pack_needs, "missing", lambda: ["kornia >= 0.7.1"])
    with pytest.raises(
        RuntimeError, match=r"^Face Beauty Face Mask needs kornia >= 0\.7\.1.*pip install"
    ) as info:
        node.mask(torch.zeros(1, 64, 64, 3), "skin", 4.0, 0.0)
    assert "\n" not in str(info.value)


def test_face_mask_takes_a_gray_image() -> None:
    node = load_pack().NODE_CLASS_MAPPINGS["FaceBeautyFaceMask"]()
    gray = torch.from_numpy(
        np.asarray(Image.fromarray(np.asarray(portrait("astronaut"))).convert("L"), np.float32) / 255
    )
    (from_gray,) = node.mask(gray[None, :, :, None], "face", 4.0, 0.0)
    (from_rgb,) = node.mask(gray[None, :, :, None].expand(-1, -1, -1, 3), "face", 4.0, 0.0)
    assert from_gray.sum() > 1000 and torch.equal(from_gray, from_rgb)
    with pytest.raises(RuntimeError, match="expected an IMAGE batch"):
        node.mask(gray, "face", 4.0, 0.0)


def test_the_nan_message_suits_offline_nodes_too() -> None:
    with pytest.raises(ImageError) as info:
        image_input.images_from_input(torch.full((1, 8, 8, 3), float("nan")))
    assert "NaN" in str(info.value) and "upload" not in str(info.value)


def test_thread_counts_change_the_output_by_at_most_one_level() -> None:
    """The docs' claim: the same input and settings give the same output for a given torch thread
    count; 1 and 2 threads may differ by one level in a few pixels (float sums in another order)."""
    rgb = np.array(portrait("astronaut"))
    params = BeautyParams(whitening=50, smoothing=90, thinface=80, enlarge_eye=70, remove_eyebrow=50)
    engine = LocalEngine()
    threads = torch.get_num_threads()
    try:
        outputs = {}
        for count in (1, 2, 2):
            torch.set_num_threads(count)
            image = engine.retouch(rgb, params).image.astype(np.int16)
            if count in outputs:
                assert np.array_equal(outputs[count], image)
            outputs[count] = image
    finally:
        torch.set_num_threads(threads)
    assert np.abs(outputs[1] - outputs[2]).max() <= 1


def test_retouch_prints_the_settings_it_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "in.png"
    Image.fromarray(np.asarray(portrait("astronaut"))[:128, :128]).save(photo)
    status = main(
        [
            "retouch",
            "--backend",
            "local",
            str(photo),
            "-o",
            str(tmp_path / "out.png"),
            "--smoothing",
            "70",
            "--max-faces",
            "3",
        ]
    )
    assert status == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("settings")]
    assert lines == [
        "settings (local): whitening=50 smoothing=70 thinface=50 shrink_face=50 enlarge_eye=50 "
        "remove_eyebrow=50 filter=none max_faces=3 (a control at 0 is off)"
    ]
    assert (
        main(
            ["retouch", "--backend", "local", str(photo), "-o", str(tmp_path / "o2.png"), "--max-faces", "0"]
        )
        == 2
    )
