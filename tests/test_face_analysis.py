"""Face analysis against Google's runtime (reference outputs in tests/data/mediapipe_reference/).

No network and no TFLite runtime: the reference JSON holds what ai-edge-litert produced for the same
crops and portraits (see that folder's README.md for the conventions and tolerances).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from beauty_api.local.faces import models
from beauty_api.local.faces.analysis import FaceAnalyzer, load_analyzer, to_nchw
from beauty_api.local.faces.tflite_reader import Op, TfliteGraph, UnsupportedModelError
from beauty_api.local.faces.torch_graph import build_torch_module

DATA = Path(__file__).parent / "data" / "mediapipe_reference"
SAMPLE = Path(__file__).parents[1] / "beauty_api" / "data" / "sample_portrait.png"
SOURCES = {
    "portrait_astronaut_512.png": SAMPLE,  # the same file (same SHA-256 as in the reference)
    "portrait_grace_hopper_512x600.jpg": DATA / "portrait_grace_hopper_512x600.jpg",
    "portrait_grace_hopper_rot25.png": DATA / "portrait_grace_hopper_rot25.png",
}
REFERENCE = json.loads((DATA / "mediapipe_face_reference.json").read_text())["images"]


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def image_tensor(name: str) -> torch.Tensor:
    return torch.from_numpy(load_rgb(SOURCES[name]) / 255.0)


def nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    torch.set_num_threads(2)
    return load_analyzer()


@pytest.fixture(scope="module")
def first_pass(analyzer: FaceAnalyzer) -> FaceAnalyzer:
    return FaceAnalyzer(analyzer.detector, analyzer.mesh, second_pass=False)


# -- model only ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_detector_raw_outputs_match_the_reference(analyzer: FaceAnalyzer, name: str) -> None:
    ref = REFERENCE[name]["detector"]
    x = nchw(load_rgb(DATA / ref["input_png"]) / 127.5 - 1.0)
    with torch.inference_mode():
        regressors, logits = analyzer.detector(x)
    assert np.allclose(logits[0, :, 0].numpy(), ref["raw_logits_896"], rtol=1e-4, atol=2e-3)
    rows = ref["raw_regressors_for_anchors_above_0.5"]
    assert rows, "the reference has anchors above 0.5"
    for anchor, values in rows.items():
        assert np.allclose(regressors[0, int(anchor)].numpy(), values, rtol=1e-4, atol=2e-3), anchor


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_mesh_raw_outputs_match_the_reference(analyzer: FaceAnalyzer, name: str) -> None:
    ref = REFERENCE[name]["faces"][0]["mesh478"]
    x = nchw(load_rgb(DATA / ref["input_png"]) / 255.0)
    with torch.inference_mode():
        landmarks, presence, tongue = analyzer.mesh(x)
    assert landmarks.shape == (1, 1, 1, 1434)
    assert np.allclose(landmarks.flatten().numpy(), ref["raw_output"], rtol=1e-4, atol=2e-3)
    assert np.allclose(presence.item(), ref["presence_logit"], rtol=1e-4, atol=2e-3)
    assert np.allclose(tongue.item(), ref["tongue_out"], rtol=1e-4, atol=2e-3)


# -- end to end ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_detections_match_the_reference(analyzer: FaceAnalyzer, name: str) -> None:
    (ref,) = REFERENCE[name]["detector"]["detections"]
    (det,) = analyzer.detect(to_nchw(image_tensor(name)))
    assert abs(det.score - ref["score"]) < 1e-4
    assert np.abs(np.array(det.box) - ref["box_xyxy_px"]).max() < 0.05
    assert np.abs(np.array(det.keypoints) - ref["keypoints_px"]).max() < 0.05


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_landmarks_match_the_reference_end_to_end(first_pass: FaceAnalyzer, name: str) -> None:
    ref = np.array(REFERENCE[name]["faces"][0]["mesh478"]["landmarks_px_xyz"])
    (face,) = first_pass.analyze(image_tensor(name))
    assert face.landmarks.shape == (478, 3) and face.landmarks.dtype == torch.float32
    assert np.abs(face.landmarks[:, :2].numpy() - ref[:, :2]).max() <= 0.25
    # z of the 468 mesh points too (the reference's iris z differs by about 0.3 px: not checked)
    assert np.abs(face.landmarks[:468, 2].numpy() - ref[:468, 2]).max() <= 0.25
    assert abs(face.roll - REFERENCE[name]["faces"][0]["roi"]["angle_rad"]) < 1e-3


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_second_pass_refines_from_the_first_pass_landmarks(analyzer: FaceAnalyzer, name: str) -> None:
    ref = np.array(REFERENCE[name]["faces"][0]["mesh478"]["landmarks_px_xyz"])
    (face,) = analyzer.analyze(image_tensor(name))
    # A different crop moves the points a little (about 2 px here), never far.
    assert np.abs(face.landmarks[:, :2].numpy() - ref[:, :2]).max() < 4.0
    assert face.score > 0.99
    lo, hi = face.landmarks[:, :2].amin(0).tolist(), face.landmarks[:, :2].amax(0).tolist()
    assert np.allclose(face.box, (*lo, *hi))


class CountedMesh:
    """The mesh model, counting its runs."""

    def __init__(self, mesh: torch.nn.Module) -> None:
        self.mesh, self.runs = mesh, 0

    def __call__(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.runs += 1
        return self.mesh(crops)

    def buffers(self):  # FaceAnalyzer asks where the models live
        return self.mesh.buffers()


class MisplacedCrops(FaceAnalyzer):
    """Detections moved right and down by a fifth of the box: the detector's crop misses the face."""

    def _detect_many(self, images):
        moved = []
        for detections in super()._detect_many(images):
            boxes = []
            for d in detections:
                x0, y0, x1, y1 = d.box
                dx, dy = 0.2 * (x1 - x0), 0.1 * (x1 - x0)
                boxes.append(dataclasses.replace(d, box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy)))
            moved.append(boxes)
        return moved


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_a_face_found_well_costs_one_mesh_pass(
    analyzer: FaceAnalyzer, first_pass: FaceAnalyzer, name: str
) -> None:
    counted = CountedMesh(analyzer.mesh)
    (face,) = FaceAnalyzer(analyzer.detector, counted).analyze(image_tensor(name))  # type: ignore[arg-type]
    assert counted.runs == 1
    (one,) = first_pass.analyze(image_tensor(name))
    assert torch.equal(face.landmarks, one.landmarks)


def test_a_crop_the_detector_missed_is_meshed_again(analyzer: FaceAnalyzer) -> None:
    name = "portrait_grace_hopper_rot25.png"
    ref = np.array(REFERENCE[name]["faces"][0]["mesh478"]["landmarks_px_xyz"])[:, :2]
    counted = CountedMesh(analyzer.mesh)
    (rescued,) = MisplacedCrops(analyzer.detector, counted).analyze(image_tensor(name))  # type: ignore[arg-type]
    (missed,) = MisplacedCrops(analyzer.detector, analyzer.mesh, second_pass=False).analyze(
        image_tensor(name)
    )
    assert counted.runs == 2
    assert np.abs(missed.landmarks[:, :2].numpy() - ref).max() > 10.0  # one pass on that crop is far off
    assert np.abs(rescued.landmarks[:, :2].numpy() - ref).max() < 2.5


def test_the_rotated_portrait_has_the_rotation_as_roll(analyzer: FaceAnalyzer) -> None:
    (upright,) = analyzer.analyze(image_tensor("portrait_grace_hopper_512x600.jpg"))
    (rotated,) = analyzer.analyze(image_tensor("portrait_grace_hopper_rot25.png"))
    # The image was turned 25 degrees counter-clockwise: the face's roll drops by about 25 degrees.
    assert abs(np.degrees(upright.roll - rotated.roll) - 25.0) < 2.0


def test_no_face_is_an_empty_list(analyzer: FaceAnalyzer) -> None:
    flat = torch.full((300, 400, 3), 0.5)
    rng = np.random.default_rng(0)
    rows = np.linspace(0, 1, 360)[:, None, None]
    sky_and_field = np.where(rows < 0.55, [0.45, 0.65, 0.95], [0.25, 0.55, 0.2]) * (0.8 + 0.2 * rows)
    landscape = np.clip(sky_and_field + rng.normal(0, 0.03, (360, 640, 3)), 0, 1).astype(np.float32)
    flag = image_tensor("portrait_grace_hopper_512x600.jpg")[:140, :140]  # stars and stripes, no face
    for image in (flat, torch.from_numpy(landscape), flag, torch.zeros(1, 1, 3)):
        assert analyzer.analyze(image) == []
    assert analyzer.track(torch.stack([flat, flat])) == [[], []]


def test_a_tiny_face_is_no_face_and_other_image_forms_are_accepted(analyzer: FaceAnalyzer) -> None:
    portrait = Image.open(SAMPLE).convert("RGB")
    canvas = Image.new("RGB", (640, 480), (120, 120, 120))
    canvas.paste(portrait.resize((32, 32)), (300, 200))  # a face of about 8 px: too small to serve
    assert analyzer.analyze(torch.from_numpy(np.asarray(canvas, np.float32) / 255.0)) == []
    image = image_tensor("portrait_astronaut_512.png")
    (reference,) = analyzer.analyze(image)
    rgba = torch.cat([image, torch.ones_like(image[..., :1])], dim=-1)
    for form in (rgba, image.half(), image.unsqueeze(0)):  # alpha, half precision, a batch of one
        (face,) = analyzer.analyze(form)
        assert (face.landmarks - reference.landmarks).abs().max() < 0.5
    with pytest.raises(ValueError, match="got a batch of 2"):
        analyzer.analyze(torch.stack([image, image]))


def test_two_faces_side_by_side_are_both_found(analyzer: FaceAnalyzer) -> None:
    left = image_tensor("portrait_grace_hopper_512x600.jpg")[60:480, 110:430]
    astronaut = Image.open(SAMPLE).convert("RGB").resize((768, 768), Image.Resampling.BICUBIC)
    right = torch.from_numpy(np.asarray(astronaut, np.float32)[0:420, 178:498] / 255.0)
    pair = torch.cat([left, right], dim=1)  # 640 x 420, one face in each half
    faces = analyzer.analyze(pair)
    assert len(faces) == 2
    centres = sorted(f.landmarks[:, 0].mean().item() for f in faces)
    assert centres[0] < 320 < centres[1]
    (alone,) = analyzer.analyze(left)
    match = min(faces, key=lambda f: f.landmarks[:, 0].mean().item())
    # the same face, seen through a different letterbox (so a slightly different crop; one mesh pass
    # follows the detector's box by a pixel or two, as Google's runtime does)
    assert (match.landmarks[:, :2] - alone.landmarks[:, :2]).abs().max() < 3.0
    single = FaceAnalyzer(analyzer.detector, analyzer.mesh, max_faces=1)
    assert len(single.analyze(pair)) == 1


def test_a_batch_of_images_is_analysed_as_each_image_alone(analyzer: FaceAnalyzer) -> None:
    astronaut = image_tensor("portrait_astronaut_512.png")
    hopper = image_tensor("portrait_grace_hopper_512x600.jpg")[44:556]  # 512 x 512, same size
    batch = torch.stack([astronaut, torch.full_like(astronaut, 0.5), hopper])
    found = analyzer.analyze_batch(batch)
    assert [len(faces) for faces in found] == [1, 0, 1]
    for faces, image in zip(found, batch, strict=True):
        for together, alone in zip(faces, analyzer.analyze(image), strict=True):
            assert (together.landmarks - alone.landmarks).abs().max() < 0.01  # batched float rounding only
            assert abs(together.score - alone.score) < 1e-4


# -- model files ---------------------------------------------------------------------------------------
def test_shipped_hashes_match_the_code_and_the_notice() -> None:
    sums = dict(
        reversed(line.split()) for line in (models.MODELS_DIR / "SHA256SUMS").read_text().splitlines() if line
    )
    for name, digest in models.EXPECTED_SHA256.items():
        assert sums[name] == digest
    assert (models.MODELS_DIR / "LICENSE-APACHE-2.0.txt").is_file()
    assert "Apache" in (models.MODELS_DIR / "NOTICE.md").read_text()


def test_missing_or_corrupted_model_file_is_a_clear_error(tmp_path: Path) -> None:
    for name in models.EXPECTED_SHA256:
        shutil.copy(models.MODELS_DIR / name, tmp_path / name)
    data = bytearray((tmp_path / models.MESH_FILE).read_bytes())
    data[5000] ^= 0x01
    (tmp_path / models.MESH_FILE).write_bytes(bytes(data))
    with pytest.raises(
        models.ModelFileError, match=r"face_landmarks_detector\.tflite is corrupted or altered"
    ):
        load_analyzer(models_dir=tmp_path)
    (tmp_path / models.DETECTOR_FILE).unlink()
    with pytest.raises(
        models.ModelFileError, match=r"missing: .*face_detection_short_range\.tflite.*reinstall"
    ):
        load_analyzer(models_dir=tmp_path)


def test_an_unknown_operator_is_named_in_the_error() -> None:
    graph = TfliteGraph(
        {0: (1, 4, 4, 3), 1: (1, 4, 4, 3)}, {0: "in", 1: "out"}, {}, [Op("SOFTMAX", [0], [1])], [0], [1]
    )
    with pytest.raises(UnsupportedModelError, match="operator SOFTMAX is not supported"):
        build_torch_module(graph)


# -- tracking ------------------------------------------------------------------------------------------
def test_a_still_face_gives_identical_landmarks_on_every_frame(analyzer: FaceAnalyzer) -> None:
    image = image_tensor("portrait_astronaut_512.png")
    tracked = analyzer.track(image.unsqueeze(0).expand(8, -1, -1, -1))
    assert all(len(faces) == 1 for faces in tracked)
    for faces in tracked[1:]:
        assert torch.equal(faces[0].landmarks, tracked[0][0].landmarks)
    # A still image takes one mesh pass where the detector's crop was good; a track starts settled
    # (its first frame meshed on its landmarks' ROI, like the frames after it): the same face, a
    # pixel or two apart.
    (alone,) = analyzer.analyze(image)
    assert (alone.landmarks[:, :2] - tracked[0][0].landmarks[:, :2]).abs().max() < 2.5


def test_a_moving_face_is_followed_without_lag(analyzer: FaceAnalyzer) -> None:
    big = image_tensor("portrait_grace_hopper_512x600.jpg")
    frames = torch.stack(
        [big[40 : 40 + 520, 40 - 2 * k : 40 - 2 * k + 440] for k in range(8)]
    )  # face moves right
    tracked = analyzer.track(frames)
    assert all(len(faces) == 1 for faces in tracked)
    start = tracked[0][0].landmarks[:, :2]
    for k, faces in enumerate(tracked):
        expected = start + torch.tensor([2.0 * k, 0.0])
        assert (faces[0].landmarks[:, :2] - expected).abs().mean(0).max() < 0.5, k


def test_tracking_finds_the_face_again_after_it_was_lost(analyzer: FaceAnalyzer) -> None:
    face = image_tensor("portrait_astronaut_512.png")
    blank = torch.full_like(face, 0.3)
    tracked = analyzer.track(torch.stack([face, blank, face]))
    assert [len(f) for f in tracked] == [1, 0, 1]


# -- the .tflite reader --------------------------------------------------------------------------------
def test_reader_operator_codes_and_options_agree_with_the_tflite_package() -> None:
    tflite = pytest.importorskip("tflite")
    from beauty_api.local.faces.tflite_reader import OPERATOR_CODES, operator_name, read_tflite

    for code, name in OPERATOR_CODES.items():
        assert getattr(tflite.BuiltinOperator, name) == code
    for code in range(127):  # the names used in "operator X is not supported" errors
        assert getattr(tflite.BuiltinOperator, operator_name(code)) == code
    data = (models.MODELS_DIR / models.DETECTOR_FILE).read_bytes()
    ours = [op for op in read_tflite(data).ops if op.name == "DEPTHWISE_CONV_2D"]
    graph = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    theirs = []
    for i in range(graph.OperatorsLength()):
        table = graph.Operators(i).BuiltinOptions()
        if graph.Operators(i).BuiltinOptionsType() == tflite.BuiltinOptions.DepthwiseConv2DOptions:
            o = tflite.DepthwiseConv2DOptions()
            o.Init(table.Bytes, table.Pos)
            theirs.append(((o.StrideH(), o.StrideW()), o.Padding(), o.FusedActivationFunction()))
    assert [(op.options["stride"], op.options["padding"], op.options["activation"]) for op in ours] == theirs
    assert {s for s, _, _ in theirs} == {(1, 1), (2, 2)}


def test_reader_names_an_unsupported_operator_of_a_real_file() -> None:
    import struct

    from beauty_api.local.faces.tflite_reader import _Table, read_tflite

    data = bytearray((models.MODELS_DIR / models.DETECTOR_FILE).read_bytes())
    model = _Table(bytes(data), struct.unpack_from("<I", data, 0)[0])
    opcode = model.tables(1)[0]  # turn the file's first operator code into SOFTMAX (25)
    for index, fmt in ((0, "<b"), (3, "<i")):
        at = opcode._field(index)
        if at:
            struct.pack_into(fmt, data, at, 25)
    with pytest.raises(UnsupportedModelError, match=r"operator SOFTMAX \(op #\d+\) is not supported"):
        read_tflite(bytes(data), source=models.DETECTOR_FILE)


def test_reader_refuses_a_file_that_is_not_tflite() -> None:
    from beauty_api.local.faces.tflite_reader import read_tflite

    with pytest.raises(UnsupportedModelError, match=r"photo\.png is not a \.tflite file"):
        read_tflite(b"\x89PNG\r\n\x1a\n" + bytes(100), source="photo.png")
