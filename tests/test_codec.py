"""codec: every input kind -> SourceImage, the upload rules (PNG/JPEG/downscale), safe decoding, back to tensors.

Test images are synthesised here (smooth gradients plus texture and mild noise, fixed seeds), so
nothing outside the repository is needed.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from beauty_api import codec
from beauty_api.codec import (
    MAX_SIDE,
    MAX_UPLOAD_BYTES,
    MIN_SIDE,
    EncodedImage,
    SourceImage,
    attach_alpha,
    decode_image,
    encode_for_upload,
    fit_to_size,
    images_from_input,
    load_image_file,
    save_image,
    to_comfy_tensor,
    upload_encoding,
)
from beauty_api.errors import ImageError

REPO = Path(__file__).resolve().parents[1]


def photo(width: int, height: int | None = None, seed: int = 0) -> np.ndarray:
    """Photo-like uint8 RGB: an upscaled smooth random field, a soft ripple and mild noise."""
    height = height or width
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8))
    base = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    ripple = (12 * np.sin(np.arange(width) / 7.0)).astype(np.int16)[None, :, None]
    noise = rng.integers(-4, 5, (height, width, 3), dtype=np.int16)
    return np.clip(base + ripple + noise, 0, 255).astype(np.uint8)


def noise(width: int, height: int | None = None, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height or width, width, 3), dtype=np.uint8)


def gradient(width: int, height: int) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.stack(
        [np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)), (x + y) / 2], axis=2
    ).astype(np.uint8)


def encoded(fmt: str, array: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def pixels(data: bytes) -> np.ndarray:
    """Decode with Pillow directly, as the API server would."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def png_with_size(width: int, height: int) -> bytes:
    """A tiny valid 1x1 PNG whose IHDR is patched to claim width x height (CRC fixed)."""
    data = bytearray(encoded("PNG", np.zeros((1, 1, 3), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# Inputs


@pytest.mark.parametrize(
    ("shape", "count", "has_alpha"),
    [((2, 8, 6, 3), 2, False), ((8, 6, 3), 1, False), ((3, 8, 6, 4), 3, True), ((2, 8, 6, 1), 2, False)],
)
def test_tensor_layouts(shape: tuple[int, ...], count: int, has_alpha: bool) -> None:
    tensor = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    sources = images_from_input(tensor)
    assert len(sources) == count
    batch = tensor if tensor.ndim == 4 else tensor[None]
    for index, source in enumerate(sources):
        assert (
            source.rgb.shape == (8, 6, 3) and source.rgb.dtype == np.uint8 and source.rgb.flags.c_contiguous
        )
        assert source.size == (6, 8)
        expected = (batch[index] * 255).round().to(torch.uint8).numpy()
        if shape[-1] == 1:
            expected = np.repeat(expected, 3, axis=2)
        np.testing.assert_array_equal(source.rgb, expected[:, :, :3])
        if has_alpha:
            np.testing.assert_array_equal(source.alpha, expected[:, :, 3])
        else:
            assert source.alpha is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_tensor_float_dtypes_round_to_nearest(dtype: torch.dtype) -> None:
    values = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=dtype).reshape(1, 1, 4, 1).expand(1, 1, 4, 3)
    rgb = images_from_input(values)[0].rgb
    assert rgb[0, :, 0].tolist() == [0, 64, 128, 255]


def test_tensor_is_not_modified_and_may_be_non_contiguous_or_need_grad() -> None:
    base = torch.rand(1, 3, 10, 12, requires_grad=True)  # channels first, then permuted: a strided view
    tensor = base.permute(0, 2, 3, 1)
    before = tensor.detach().clone()
    source = images_from_input(tensor)[0]
    assert source.size == (12, 10)
    assert torch.equal(tensor.detach(), before)


def test_uint8_tensor_is_taken_as_is() -> None:
    tensor = torch.arange(0, 48, dtype=torch.uint8).reshape(1, 4, 4, 3)
    np.testing.assert_array_equal(images_from_input(tensor)[0].rgb, tensor[0].numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensor_on_gpu_is_moved_to_cpu() -> None:
    tensor = torch.rand(1, 16, 16, 3)
    assert np.array_equal(images_from_input(tensor.cuda())[0].rgb, images_from_input(tensor)[0].rgb)


@pytest.mark.parametrize(
    ("array", "expected_size", "count"),
    [
        (np.full((5, 7), 9, np.uint8), (7, 5), 1),
        (np.full((5, 7, 3), 9, np.uint8), (7, 5), 1),
        (np.full((2, 5, 7, 3), 9, np.uint8), (7, 5), 2),
        (np.full((5, 7, 1), 9, np.uint8), (7, 5), 1),
    ],
)
def test_numpy_uint8_layouts(array: np.ndarray, expected_size: tuple[int, int], count: int) -> None:
    sources = images_from_input(array)
    assert len(sources) == count
    assert all(s.size == expected_size and (s.rgb == 9).all() and s.alpha is None for s in sources)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_float(dtype: type) -> None:
    array = np.array([[[0.0, 0.5, 1.0], [0.2, 0.4, 0.6]]], dtype=dtype)
    assert images_from_input(array)[0].rgb.tolist() == [[[0, 128, 255], [51, 102, 153]]]


def test_numpy_rgba_and_uint16() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 77
    source = images_from_input(rgba)[0]
    assert source.alpha is not None and (source.alpha == 77).all()
    sixteen = np.full((4, 4, 3), 65535, np.uint16)
    sixteen[0, 0] = 32768
    rgb = images_from_input(sixteen)[0].rgb
    assert rgb[1, 1].tolist() == [255, 255, 255] and rgb[0, 0].tolist() == [128, 128, 128]


def test_opaque_alpha_of_a_4_channel_tensor_is_kept_for_a_uniform_batch() -> None:
    sources = images_from_input(torch.ones(2, 4, 4, 4))
    assert all(s.alpha is not None and (s.alpha == 255).all() for s in sources)


def _pil(mode: str) -> Image.Image:
    rgb = photo(16, 12)
    if mode == "P+transparency":
        image = Image.fromarray(rgb).quantize(8)
        image.info["transparency"] = 0
        return image
    if mode == "I;16":
        return Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    if mode == "LA":
        return Image.fromarray(rgb).convert("LA")
    if mode == "RGBA":
        rgba = np.dstack([rgb, np.full((12, 16), 128, np.uint8)])
        return Image.fromarray(rgba)
    return Image.fromarray(rgb).convert(mode)


@pytest.mark.parametrize(
    ("mode", "has_alpha"),
    [
        ("L", False),
        ("1", False),
        ("RGB", False),
        ("CMYK", False),
        ("I;16", False),
        ("F", False),
        ("LA", False),
        ("P+transparency", True),
        ("RGBA", True),
    ],
)
def test_pil_modes(mode: str, has_alpha: bool) -> None:
    image = Image.fromarray(np.full((12, 16), 0.5, np.float32)) if mode == "F" else _pil(mode)
    source = images_from_input(image)[0]
    assert source.size == (16, 12) and source.rgb.dtype == np.uint8
    assert (source.alpha is not None) == has_alpha
    if mode in ("L", "I;16", "LA", "F"):  # gray widened to RGB, all channels equal
        assert (source.rgb[:, :, 0] == source.rgb[:, :, 2]).all()


def test_pil_i16_is_scaled_not_clipped() -> None:
    image = Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16))
    assert images_from_input(image)[0].rgb[0, :, 0].tolist() == [0, 100, 255]


def test_pil_rgba_keeps_alpha_values_and_p_transparency_marks_the_index() -> None:
    source = images_from_input(_pil("RGBA"))[0]
    assert source.alpha is not None and (source.alpha == 128).all()
    palette = _pil("P+transparency")
    alpha = images_from_input(palette)[0].alpha
    assert alpha is not None
    np.testing.assert_array_equal(alpha == 0, np.asarray(palette) == 0)


def test_fully_opaque_alpha_of_a_pil_image_is_dropped() -> None:
    image = Image.fromarray(np.dstack([photo(8), np.full((8, 8), 255, np.uint8)]))
    assert images_from_input(image)[0].alpha is None


def _exif_rotated_png(path: Path, array: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, "PNG", exif=exif.tobytes())


@pytest.mark.parametrize("as_str", [True, False])
def test_path_input_applies_exif_orientation(tmp_path: Path, as_str: bool) -> None:
    array = photo(60, 40)
    path = tmp_path / "rotated.png"
    _exif_rotated_png(path, array, 6)  # 6 = stored rotated; display = 90 degrees clockwise
    source = images_from_input(str(path) if as_str else path)[0]
    assert source.size == (40, 60)
    np.testing.assert_array_equal(source.rgb, np.rot90(array, k=-1))


def test_list_and_bytes_inputs(tmp_path: Path) -> None:
    rgba = np.dstack([photo(10), np.full((10, 10), 9, np.uint8)])
    sources = images_from_input([encoded("PNG", rgba), np.zeros((10, 10, 3), np.uint8)])
    assert len(sources) == 2
    assert sources[0].alpha is not None and (sources[0].alpha == 9).all()
    np.testing.assert_array_equal(sources[0].rgb, rgba[:, :, :3])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.zeros(0, 8, 8, 3), "empty batch"),
        (torch.zeros(1, 0, 8, 3), "zero size"),
        (torch.zeros(8, 8), "[B,H,W,C]"),
        (torch.zeros(1, 1, 8, 8, 3), "[B,H,W,C]"),
        (torch.zeros(1, 8, 8, 2), "2 channels"),
        (torch.zeros(1, 3, 64, 64), "64 channels"),  # channels-first is refused with its shape
        (torch.zeros(1, 8, 8, 3, dtype=torch.int32), "dtype"),
        (np.zeros((0, 4, 4, 3), np.uint8), "empty batch"),
        (np.zeros((4, 4, 5), np.uint8), "5 channels"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.int64), "dtype"),
        ([], "no images"),
        (42, "unsupported image input"),
    ],
)
def test_bad_inputs_are_refused(value: object, message: str) -> None:
    with pytest.raises(ImageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        images_from_input(value)


@pytest.mark.parametrize("make", [torch.tensor, np.array], ids=["tensor", "numpy"])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "infinite"),
        (-float("inf"), "infinite"),
        (254.0, "divide by 255"),
        (1.5, "scale it to 0..1"),
        (-0.5, "scale it to 0..1"),
    ],
)
def test_bad_float_values_are_refused(make: object, bad: float, message: str) -> None:
    values = [[[0.0, 0.5, 1.0], [bad, 0.2, 0.3]]]
    with pytest.raises(ImageError, match=message):
        images_from_input(make(values))  # type: ignore[operator]


@pytest.mark.parametrize("make", [torch.tensor, np.array], ids=["tensor", "numpy"])
def test_tiny_overshoot_is_clipped_silently(make: object) -> None:
    rgb = images_from_input(make([[[-0.0009, 0.5, 1.0009]]]))[0].rgb  # type: ignore[operator]
    assert rgb.tolist() == [[[0, 128, 255]]]


def test_missing_file_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot read image file"):
        load_image_file(tmp_path / "absent.png")


def test_source_image_validates_its_arrays() -> None:
    with pytest.raises(ImageError, match="HxWx3 uint8"):
        SourceImage(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="C-contiguous"):
        SourceImage(np.zeros((4, 8, 3), np.uint8)[:, ::2])
    with pytest.raises(ImageError, match="alpha"):
        SourceImage(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8))
    assert "4x4" in repr(SourceImage(np.zeros((4, 4, 3), np.uint8)))


def test_codec_import_does_not_import_torch() -> None:
    code = (
        "import sys, numpy as np; import beauty_api.codec as c; "
        "c.encode_for_upload(c.images_from_input(np.zeros((64, 64, 3), np.uint8))[0]); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


# ---------------------------------------------------------------------------------------------
# Upload encoding


def test_small_image_is_lossless_png_and_round_trips() -> None:
    source = SourceImage(photo(64, 50))
    upload = encode_for_upload(source)
    assert (upload.mime_type, upload.filename, upload.size, upload.resized) == (
        "image/png",
        "image.png",
        (64, 50),
        False,
    )
    np.testing.assert_array_equal(pixels(upload.data), source.rgb)
    np.testing.assert_array_equal(decode_image(upload.data), source.rgb)


def test_two_part_png_round_trips() -> None:
    source = SourceImage(noise(500, 420))  # > 512 KiB filtered: deflated in two halves on threads
    upload = encode_for_upload(source)
    assert upload.mime_type == "image/png"
    np.testing.assert_array_equal(pixels(upload.data), source.rgb)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, checking each CRC (lenient decoders skip that check)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


@pytest.mark.parametrize(("width", "height"), [(60, 50), (500, 420)], ids=["one part", "two parts"])
def test_png_is_strictly_valid(width: int, height: int) -> None:
    data = encode_for_upload(SourceImage(noise(width, height))).data
    chunks = png_chunks(data)
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (width, height, 8, 2, 0, 0, 0)
    rows = zlib.decompress(chunks[1][1])  # checks the zlib header and the Adler-32 trailer
    assert len(rows) == height * (width * 3 + 1)


@pytest.mark.parametrize(("width", "height"), [(48, 100), (100, 48), (1, 1000)])
def test_too_small_is_refused_before_any_request(width: int, height: int) -> None:
    with pytest.raises(ImageError) as caught:
        encode_for_upload(SourceImage(np.zeros((height, width, 3), np.uint8)))
    text = str(caught.value)
    assert f"{width} x {height}" in text and "more than 48 px" in text and "Upscale" in text


def test_min_side_boundary_is_accepted() -> None:
    upload = encode_for_upload(SourceImage(photo(MIN_SIDE, MIN_SIDE)))
    assert upload.size == (49, 49) and upload.mime_type == "image/png"


def test_extreme_aspect_ratio_is_refused() -> None:
    with pytest.raises(ImageError, match="aspect ratio is too extreme") as caught:
        encode_for_upload(SourceImage(np.zeros((100, 9000, 3), np.uint8)))
    assert "9000 x 100" in str(caught.value) and "Crop" in str(caught.value)


def test_wide_image_is_downscaled_keeping_aspect_and_stays_png_when_it_fits() -> None:
    source = SourceImage(gradient(4100, 300))
    upload = encode_for_upload(source)
    width, height = upload.size
    assert width == MAX_SIDE and abs(height - 300 * MAX_SIDE / 4100) <= 1
    assert upload.resized and upload.source_size == (4100, 300)
    assert upload.mime_type == "image/png" and pixels(upload.data).shape == (height, width, 3)


def test_photo_2048_goes_as_full_resolution_jpeg() -> None:
    upload = encode_for_upload(SourceImage(photo(2048)))
    assert upload.mime_type == "image/jpeg" and upload.filename == "image.jpg"
    assert upload.size == (2048, 2048) and not upload.resized
    assert len(upload.data) <= MAX_UPLOAD_BYTES
    assert pixels(upload.data).shape == (2048, 2048, 3)


def test_noise_2048_goes_under_the_cap_without_a_full_size_png_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    png_sizes: list[tuple[int, ...]] = []
    real_encode_png = upload_encoding.encode_png

    def spy(rgb: np.ndarray) -> bytes:
        png_sizes.append(rgb.shape)
        return real_encode_png(rgb)

    monkeypatch.setattr(upload_encoding, "encode_png", spy)
    upload = encode_for_upload(SourceImage(noise(2048)))
    assert len(upload.data) <= MAX_UPLOAD_BYTES
    assert upload.mime_type == "image/jpeg" or upload.resized  # noise is far over 2 MB as PNG
    assert upload.resized  # not even q85 JPEG holds 2048x2048 noise
    assert (2048, 2048, 3) not in png_sizes  # the sampled estimate skipped the hopeless PNG
    width, height = upload.size
    assert MIN_SIDE <= width == height <= MAX_SIDE
    assert pixels(upload.data).shape == (height, width, 3)


@pytest.mark.parametrize("make", [gradient, photo], ids=["gradient", "photo"])
def test_4096_square_goes_through(make: object) -> None:
    upload = encode_for_upload(SourceImage(make(4096, 4096)))  # type: ignore[operator]
    width, height = upload.size
    assert width == height and MIN_SIDE <= width <= MAX_SIDE and upload.resized
    assert len(upload.data) <= MAX_UPLOAD_BYTES
    assert pixels(upload.data).shape == (height, width, 3)


def test_oversize_source_that_cannot_fit_skips_the_full_size_resize(monkeypatch: pytest.MonkeyPatch) -> None:
    resized_to: list[tuple[int, int]] = []
    real_resize = upload_encoding.resize

    def spy(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        resized_to.append(size)
        return real_resize(array, size)

    monkeypatch.setattr(upload_encoding, "resize", spy)
    upload = encode_for_upload(SourceImage(noise(4200, 600)))  # ~6 MB even as JPEG at 4095 px
    assert (4095, 585) not in resized_to and len(resized_to) >= 1
    assert len(upload.data) <= MAX_UPLOAD_BYTES and upload.size[0] < 4095
    assert abs(upload.size[0] / upload.size[1] - 7) < 0.05


def test_lower_jpeg_quality_before_downscaling(monkeypatch: pytest.MonkeyPatch) -> None:
    source = SourceImage(photo(512))
    q95 = upload_encoding._encode_jpeg(source.rgb, 95)
    monkeypatch.setattr(upload_encoding, "MAX_UPLOAD_BYTES", len(q95) - 1)
    upload = encode_for_upload(source)
    assert upload.mime_type == "image/jpeg" and upload.size == (512, 512)
    assert len(upload.data) < len(q95)


def test_downscale_when_quality_steps_are_not_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    source = SourceImage(photo(600, 400))
    cap = len(upload_encoding._encode_jpeg(source.rgb, 85)) // 3
    monkeypatch.setattr(upload_encoding, "MAX_UPLOAD_BYTES", cap)
    upload = encode_for_upload(source)
    width, height = upload.size
    assert upload.resized and len(upload.data) <= cap
    assert abs(width / height - 1.5) < 0.02 and width < 600


@pytest.mark.parametrize("make", [lambda: photo(300), lambda: photo(1100, 1000), lambda: noise(700)])
def test_encoding_is_deterministic(make: object) -> None:
    array = make()  # type: ignore[operator]
    first = encode_for_upload(SourceImage(array))
    second = encode_for_upload(SourceImage(array.copy()))
    assert first == second


def test_alpha_is_never_uploaded() -> None:
    rgba = np.dstack([photo(64), np.zeros((64, 64), np.uint8)])
    upload = encode_for_upload(images_from_input(rgba)[0])
    assert Image.open(io.BytesIO(upload.data)).mode == "RGB"


def test_encoded_image_repr_hides_the_bytes() -> None:
    upload = EncodedImage(b"\x00" * 5000, "image/png", "image.png", (10, 10), (20, 20))
    assert upload.resized and "5000 bytes" in repr(upload) and "\\x00" not in repr(upload)


# ---------------------------------------------------------------------------------------------
# Decoding results


@pytest.mark.parametrize(
    ("fmt", "options", "lossless"),
    [
        ("PNG", {}, True),
        ("WEBP", {"lossless": True}, True),
        ("JPEG", {"quality": 95}, False),
        ("GIF", {}, False),
        ("BMP", {}, True),
    ],
)
def test_decode_formats(fmt: str, options: dict[str, object], lossless: bool) -> None:
    array = photo(40, 30)
    rgb = decode_image(encoded(fmt, array, **options))
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    if lossless:
        np.testing.assert_array_equal(rgb, array)
    else:
        assert np.abs(rgb.astype(int) - array).mean() < 12


def test_decode_drops_result_alpha_and_widens_gray() -> None:
    rgba = np.dstack([photo(20), np.zeros((20, 20), np.uint8)])
    np.testing.assert_array_equal(decode_image(encoded("PNG", rgba)), rgba[:, :, :3])
    gray = decode_image(encoded("PNG", photo(20)[:, :, 0]))
    assert gray.shape == (20, 20, 3) and (gray[:, :, 0] == gray[:, :, 1]).all()


def test_decode_applies_exif_orientation(tmp_path: Path) -> None:
    array = photo(30, 20)
    path = tmp_path / "r.png"
    _exif_rotated_png(path, array, 3)  # 3 = rotated 180 degrees
    np.testing.assert_array_equal(decode_image(path.read_bytes()), array[::-1, ::-1])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01\x02\x03garbage", "first bytes: 00 01 02 03"),
        (b"<!DOCTYPE html><html>error</html>", "looks like text"),
        (b"", "first bytes: none"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "not a PNG, JPEG or WEBP"),
    ],
)
def test_decode_refuses_non_images(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data)


def test_decode_message_stays_short_for_huge_garbage() -> None:
    with pytest.raises(ImageError) as caught:
        decode_image(b"x" * 5_000_000)
    assert len(str(caught.value)) < 300


def test_decode_refuses_truncated_png() -> None:
    data = encoded("PNG", noise(64))
    with pytest.raises(ImageError, match="damaged or truncated"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_refused_by_pillow_guard() -> None:
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(png_with_size(50_000, 50_000))


def test_decompression_bomb_refused_by_own_limit_even_without_pillow_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageError, match="50000 x 50000"):
        decode_image(png_with_size(50_000, 50_000))


def test_size_just_over_own_limit_is_refused_from_the_header() -> None:
    side = int(codec.MAX_DECODE_PIXELS**0.5) + 1  # under Pillow's own threshold: only our check acts
    with pytest.raises(ImageError, match="limit"):
        decode_image(png_with_size(side, side))


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(ImageError, match="must be bytes"):
        decode_image("not bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Back to the caller


def test_fit_to_size_identity_and_resize() -> None:
    array = photo(40, 30)
    assert fit_to_size(array, (40, 30)) is array
    resized = fit_to_size(array, (80, 50))
    assert resized.shape == (50, 80, 3) and resized.dtype == np.uint8
    with pytest.raises(ImageError):
        fit_to_size(array, (0, 10))


def test_attach_alpha() -> None:
    rgb = photo(20, 10)
    assert attach_alpha(rgb, None) is rgb
    alpha = np.full((10, 20), 33, np.uint8)
    rgba = attach_alpha(rgb, alpha)
    assert rgba.shape == (10, 20, 4) and (rgba[:, :, 3] == 33).all()
    np.testing.assert_array_equal(rgba[:, :, :3], rgb)
    rescaled = attach_alpha(photo(40, 20), alpha)  # alpha from a different-size source is resized
    assert rescaled.shape == (20, 40, 4) and (rescaled[:, :, 3] == 33).all()


def test_to_comfy_tensor() -> None:
    arrays = [np.full((6, 5, 3), 255, np.uint8), np.zeros((6, 5, 3), np.uint8)]
    tensor = to_comfy_tensor(arrays)
    assert tensor.shape == (2, 6, 5, 3) and tensor.dtype == torch.float32 and tensor.device.type == "cpu"
    assert tensor[0].min().item() == 1.0 and tensor[1].max().item() == 0.0
    assert torch.allclose(to_comfy_tensor([np.full((2, 2, 4), 51, np.uint8)]), torch.full((1, 2, 2, 4), 0.2))


def test_to_comfy_tensor_refuses_mixed_shapes_and_empty() -> None:
    with pytest.raises(ImageError, match=r"\(6, 5, 3\), \(6, 5, 4\)"):
        to_comfy_tensor([np.zeros((6, 5, 3), np.uint8), np.zeros((6, 5, 4), np.uint8)])
    with pytest.raises(ImageError, match="no images"):
        to_comfy_tensor([])


def test_tensor_round_trip_through_upload_is_lossless() -> None:
    tensor = to_comfy_tensor([photo(64)])
    source = images_from_input(tensor)[0]
    back = to_comfy_tensor([decode_image(encode_for_upload(source).data)])
    assert torch.equal(back, tensor)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp", ".PNG"])
def test_save_image(tmp_path: Path, suffix: str) -> None:
    array = photo(32, 24)
    path = tmp_path / f"out{suffix}"
    save_image(path, array)
    back = load_image_file(path)
    assert back.size == (32, 24)
    if suffix.lower() == ".png":
        np.testing.assert_array_equal(back.rgb, array)


def test_save_rgba_as_jpeg_drops_alpha_and_png_keeps_it(tmp_path: Path) -> None:
    rgba = np.dstack([photo(16), np.full((16, 16), 100, np.uint8)])
    save_image(tmp_path / "a.jpg", rgba)
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    save_image(tmp_path / "a.png", rgba)
    alpha = load_image_file(tmp_path / "a.png").alpha
    assert alpha is not None and (alpha == 100).all()


def test_save_image_refuses_unknown_suffix_and_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"\.png, \.jpg"):
        save_image(tmp_path / "x.tif", photo(8))
    with pytest.raises(ImageError, match="uint8"):
        save_image(tmp_path / "x.png", np.zeros((8, 8, 3), np.float32))
