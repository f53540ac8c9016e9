"""`python -m beauty_api landmarks INPUT... -o OUT`: draw the face mesh and regions, print score and time.

Offline (the shipped MediaPipe models run by torch). For each input image it writes OUT/<name>_landmarks.png
(or OUT itself when OUT ends in .png/.jpg and there is one input) with the region masks tinted, the
region outlines and the 478 points drawn, and prints one line per face. Importing this module is cheap;
torch and the models load when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..local.faces.limits import MAX_FACES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# region -> RGB tint / outline colour
REGION_COLOURS = {
    "skin": (255, 170, 120),
    "eyes": (80, 200, 255),
    "brows": (170, 110, 255),
    "lips": (255, 70, 120),
}


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """Register the `landmarks` subcommand (its handler is `run`)."""
    parser = subparsers.add_parser(
        "landmarks",
        parents=list(parents),
        help="find faces offline and draw their 478 landmarks and regions",
        description="Find faces offline (MediaPipe's detector and face mesh, run by torch; free, no "
        "network) and write each image with the mesh and the face regions drawn. Prints, per face, "
        "the presence score, the roll angle and the time taken.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output folder (or a .png/.jpg file for one input)",
    )
    parser.add_argument(
        "--max-faces",
        type=int,
        default=MAX_FACES,
        help=f"at most this many faces per image (default {MAX_FACES})",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--no-regions", action="store_true", help="draw the points only, no region tints")
    parser.set_defaults(handler=run)
    return parser


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _inputs(names: Sequence[str]) -> tuple[list[Path], list[str]]:
    found: list[Path] = []
    problems: list[str] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            problems.append(f"error: input not found: {name}")
    if not found and not problems:
        problems.append("error: no image files in the inputs")
    return found, problems


def _destination(output: str, source: Path, count: int) -> Path:
    out = Path(output)
    if count == 1 and out.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return out
    return out / f"{source.stem}_landmarks.png"


def draw(rgb: Any, faces: Sequence[Any], *, regions: bool = True) -> Any:
    """The image (uint8 HxWx3 array) with region tints, outlines and landmarks drawn; a PIL image."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ..local.faces import topology as T
    from ..local.faces.regions import region_mask

    height, width = rgb.shape[:2]
    canvas = rgb.astype(np.float32)
    if regions and faces:
        for region, colour in REGION_COLOURS.items():
            mask = region_mask(faces, height, width, region, feather=2.0).cpu().numpy()[..., None]
            canvas = canvas * (1 - 0.35 * mask) + np.array(colour, np.float32) * 0.35 * mask
    image = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(image)
    outlines = {
        T.FACE_OVAL: (255, 255, 255),
        T.LEFT_EYE: REGION_COLOURS["eyes"],
        T.RIGHT_EYE: REGION_COLOURS["eyes"],
        T.LEFT_BROW: REGION_COLOURS["brows"],
        T.RIGHT_BROW: REGION_COLOURS["brows"],
        T.LIPS_OUTER: REGION_COLOURS["lips"],
        T.LIPS_INNER: REGION_COLOURS["lips"],
        T.LEFT_NOSTRIL: (255, 255, 0),
        T.RIGHT_NOSTRIL: (255, 255, 0),
    }
    radius = max(1.0, min(height, width) / 600)
    for face in faces:
        pts = face.landmarks[:, :2].detach().cpu().tolist()
        for contour, colour in outlines.items():
            pen.line(
                [tuple(pts[i]) for i in (*contour, contour[0])], fill=colour, width=max(1, round(radius))
            )
        for x, y in pts[: T.NUM_MESH_POINTS]:
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(0, 255, 120))
        for centre in (T.LEFT_IRIS_CENTER, T.RIGHT_IRIS_CENTER):
            x, y = pts[centre]
            pen.ellipse((x - 2 * radius, y - 2 * radius, x + 2 * radius, y + 2 * radius), outline=(255, 0, 0))
    return image


def run(args: argparse.Namespace) -> int:
    """Analyse, draw and report each input; 0 when every image was read and written."""
    inputs, problems = _inputs(args.inputs)
    if args.max_faces < 1:
        problems.append("error: --max-faces must be at least 1")
    if problems:
        for problem in problems:
            _err(problem)
        return EXIT_USAGE
    from ..local.needs import EngineUnavailable, require

    try:
        require("`landmarks`")
    except EngineUnavailable as error:
        _err(f"error: {error}")
        return EXIT_USAGE
    import numpy as np
    import torch
    from PIL import Image

    from ..local.faces.analysis import load_analyzer
    from ..local.faces.models import ModelFileError

    started = time.perf_counter()
    try:
        shared = load_analyzer(torch.device(args.device))
    except (ModelFileError, ImportError, RuntimeError) as error:
        _err(f"error: {error}")
        return EXIT_USAGE
    print(f"models loaded in {time.perf_counter() - started:.2f} s ({args.device})")
    analyzer = shared.configured(max_faces=args.max_faces)
    failed = 0
    for source in inputs:
        try:
            rgb = np.asarray(Image.open(source).convert("RGB"))
        except OSError as error:
            _err(f"{source}: cannot read the image ({error})")
            failed += 1
            continue
        image = torch.from_numpy(rgb.astype(np.float32) / 255.0).to(args.device)
        t0 = time.perf_counter()
        faces = analyzer.analyze(image)
        ms = (time.perf_counter() - t0) * 1000
        if not faces:
            print(f"{source}: no face ({ms:.0f} ms)")
        for i, face in enumerate(faces):
            x0, y0, x1, y1 = face.box
            print(
                f"{source}: face {i + 1}/{len(faces)} score {face.score:.3f} roll {np.degrees(face.roll):+.1f} deg "
                f"box {x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f} ({ms:.0f} ms for the image)"
            )
        destination = _destination(args.output, source, len(inputs))
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            draw(rgb, faces, regions=not args.no_regions).save(destination)
        except OSError as error:
            _err(f"{source}: cannot write {destination} ({error})")
            failed += 1
            continue
        print(f"{source}: wrote {destination}")
    return EXIT_FAILED if failed else EXIT_OK
