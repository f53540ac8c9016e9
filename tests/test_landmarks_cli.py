"""`python -m beauty_api landmarks`: draws the mesh and regions, prints score and time per face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_PORTRAIT
from PIL import Image

from beauty_api.cli import main


def test_landmarks_draws_each_image_and_reports_each_face(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), (90, 90, 90)).save(blank)
    out = tmp_path / "out"
    assert main(["landmarks", str(SAMPLE_PORTRAIT), str(blank), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sample_portrait.png: face 1/1 score 1.000" in printed and " ms" in printed
    assert "blank.png: no face" in printed
    drawn = np.asarray(Image.open(out / "sample_portrait_landmarks.png").convert("RGB"), np.int16)
    original = np.asarray(Image.open(SAMPLE_PORTRAIT).convert("RGB"), np.int16)
    changed = np.abs(drawn - original).sum(-1) > 30
    assert changed[60:190, 170:285].mean() > 0.2, "the face area is drawn over"
    assert changed[300:, :].mean() < 0.01, "nothing is drawn away from the face"
    assert (out / "blank_landmarks.png").is_file()


def test_landmarks_refuses_a_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["landmarks", str(tmp_path / "nope.png"), "-o", str(tmp_path)]) == 2
    assert "input not found" in capsys.readouterr().err
