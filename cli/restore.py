"""``dcicnn restore INPUT... -o OUTDIR``: restore files, folders and globs; one bad file never stops the others."""

from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from tqdm import tqdm

from dcicnn.errors import DcicnnError, InvalidArgumentError, WeightsNotFoundError
from dcicnn.imageio import (
    WIDE_COLOUR,
    open_image,
    read_wide_colour,
    readable_extensions,
    save_image_atomic,
    write_wide_colour,
)
from dcicnn.options import RestoreOptions
from dcicnn_cli.options import add_inference_arguments, check_device_dtype, inference_options

if TYPE_CHECKING:  # torch is imported when a model is loaded, not for `--help`
    from dcicnn.model import DCICNN

FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "restore",
        help="restore image files, folders (recursive) and globs into an output folder",
        description="Restore every input image with DCI-CNN and write the results under OUTDIR, keeping the folder "
        "structure of folder inputs. Outputs are written atomically and never overwrite an input; an existing "
        "output is kept unless --overwrite. Each file that fails is reported in one line and the others go on; "
        "the exit status is 1 if any failed.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR", help="output folder")
    parser.add_argument("--model", help="model directory or Hub repo id (default: the bundled default weights)")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    add_inference_arguments(parser)
    parser.add_argument(
        "--format",
        choices=[*FORMATS, "same"],
        default="png",
        help="output format (default png; 'same' keeps the input's)",
    )
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality of the output (default 95)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    existing.add_argument(
        "--skip-existing", action="store_true", help="leave inputs whose output exists alone (resume a big folder)"
    )
    parser.add_argument(
        "--keep-extension",
        action="store_true",
        help="name outputs after the whole input name (photo.jpg -> photo.jpg.png), so photo.jpg and photo.webp "
        "do not both become photo.png",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="refuse images with more pixels than this (default: Pillow's limit, about 89 MP)",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="average over the 8 flips and rotations of each image (8x slower, a little better; see README)",
    )
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def collect(
    inputs: list[str], output: Path, extension: str | None, keep_extension: bool = False
) -> tuple[list[Job], list[str]]:
    """Jobs for every input image, and one error line per input that names nothing restorable. Files under the
    output folder are never inputs (an output folder inside an input folder is not restored again)."""
    jobs: list[Job] = []
    errors: list[str] = []
    out = output.resolve()
    extensions = readable_extensions()

    def target(relative: Path) -> Path:
        name = relative.name + (extension or "") if keep_extension else relative.stem + (extension or relative.suffix)
        return output / relative.parent / name

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.resolve().is_relative_to(out))
            files = [p for p in found if p.suffix.lower() in extensions]
            others = [p for p in found if p.suffix.lower() not in extensions and not p.name.startswith(".")]
            if others:  # never skip a file without saying so
                names = ", ".join(str(p.relative_to(path)) for p in others[:3]) + (", ..." if len(others) > 3 else "")
                print(
                    f"dcicnn restore: note: {item}: skipped {len(others)} file(s) that are not images by their "
                    f"extension ({names})",
                    file=sys.stderr,
                )
            if not files:
                errors.append(f"{item}: no images in this folder")
            jobs += [Job(f, target(f.relative_to(path))) for f in files]
        elif path.exists() or not glob.has_magic(item):
            jobs.append(Job(path, target(Path(path.name))))
        else:
            matches = sorted(
                Path(m)
                for m in glob.glob(item, recursive=True)
                if Path(m).is_file() and not Path(m).resolve().is_relative_to(out)
            )
            if not matches:
                errors.append(f"{item}: no file matches this pattern")
            jobs += [Job(m, target(Path(m.name))) for m in matches]
    return jobs, errors


def load_model_source(model: str | None, revision: str | None) -> DCICNN:
    """The model a command was given with --model, or the bundled default weights."""
    from dcicnn import hub
    from dcicnn.model import DCICNN

    if model is None and not hub.has_bundled_weights():
        raise WeightsNotFoundError(
            "this version of dcicnn ships no trained default weights yet; pass --model DIR_OR_REPO_ID"
        )
    return DCICNN.from_pretrained(model, revision=revision)


def save_options(image: Image.Image, target: Path, quality: int) -> dict[str, Any]:
    options: dict[str, Any] = {}
    suffix = target.suffix.lower()
    # the input's colour profile, resolution and EXIF (orientation already applied and reset) go with the output
    if "icc_profile" in image.info:
        options["icc_profile"] = image.info["icc_profile"]
    if "dpi" in image.info and suffix in (".jpg", ".jpeg", ".png", ".tif", ".tiff"):
        options["dpi"] = image.info["dpi"]
    if "exif" in image.info and suffix in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"):
        options["exif"] = image.info["exif"]
    if image.mode == "F" and suffix not in (".tif", ".tiff"):
        raise InvalidArgumentError(f"{target}: a floating-point image can only be saved as TIFF; use --format tiff")
    if suffix in (".jpg", ".jpeg"):
        if image.mode not in ("RGB", "L"):
            raise InvalidArgumentError(f"JPEG cannot store a {image.mode} image; use --format png")
        options.update(quality=quality, subsampling=0)  # 4:4:4: no new colour bleeding
    elif suffix == ".webp":
        options.update(quality=quality)
    return options


def restore_one(model: DCICNN, job: Job, args: argparse.Namespace, options: RestoreOptions, inputs: set[Path]) -> None:
    if job.target.resolve() in inputs:
        raise InvalidArgumentError(f"the output {job.target} would overwrite an input")
    if job.target.exists() and not args.overwrite:
        raise FileExistsError(f"{job.target} exists (pass --overwrite to replace it, or --skip-existing to keep it)")
    with open_image(job.source, args.max_pixels) as image:  # multi-frame formats keep their file open
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            tqdm.write(
                f"dcicnn restore: note: {job.source}: restoring the first of its {frames} frames", file=sys.stderr
            )
        if image.info.get(
            WIDE_COLOUR
        ):  # 48/64-bit colour: Pillow would decode 8 bits, so read and write 16 with OpenCV
            pixels = model.restore(read_wide_colour(job.source, image), options=options)
            job.target.parent.mkdir(parents=True, exist_ok=True)
            if job.target.suffix.lower() in (".png", ".tif", ".tiff"):
                write_wide_colour(pixels, job.target)
                return
            tqdm.write(
                f"dcicnn restore: note: {job.target}: 8 bits per channel ({job.target.suffix} holds no more)",
                file=sys.stderr,
            )
            restored = Image.fromarray((pixels.astype("float64") / 257.0).round().astype("uint8"))
        else:
            restored = model.restore(image, options=options)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        save_image_atomic(restored, job.target, **save_options(restored, job.target, args.quality))


def run(args: argparse.Namespace) -> int:
    # Every option is checked before any work, and once, not once per image.
    options = inference_options(args, ensemble=args.ensemble)
    if not 1 <= args.quality <= 100:
        raise InvalidArgumentError(f"--quality must be in 1..100, got {args.quality}")
    extension = None if args.format == "same" else FORMATS[args.format]
    jobs, errors = collect(args.inputs, args.output, extension, args.keep_extension)
    for line in errors:
        print(f"dcicnn restore: error: {line}", file=sys.stderr)
    model = load_model_source(args.model, args.revision)
    check_device_dtype(model, options)  # a device this machine lacks: one line, nothing created
    created = jobs and not args.output.exists()
    if jobs:
        args.output.mkdir(parents=True, exist_ok=True)
        if not os.access(args.output, os.W_OK):
            raise PermissionError(f"{args.output}: output folder is not writable")
    inputs = {job.source.resolve() for job in jobs}
    claimed: dict[Path, Path] = {}
    failed, skipped, done = len(errors), 0, 0
    try:
        for job in tqdm(jobs, desc="restoring", unit="image", disable=None, file=sys.stderr):
            try:
                if job.target in claimed:
                    raise FileExistsError(
                        f"{job.source}: its output {job.target} is also that of {claimed[job.target]}, which was "
                        "restored; pass --keep-extension to name outputs after the whole input name"
                    )
                claimed[job.target] = job.source
                if args.skip_existing and job.target.exists():
                    skipped += 1
                    continue
                restore_one(model, job, args, options, inputs)
                done += 1
            except (DcicnnError, OSError) as err:  # this file's problem: say so and go on with the others
                failed += 1
                tqdm.write(f"dcicnn restore: error: {_reason(job, err)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"interrupted: restored {done} of {len(jobs)} image(s) into {args.output}", file=sys.stderr)
        raise
    finally:
        if created and not any(args.output.iterdir()):
            args.output.rmdir()  # nothing was written: leave no empty folder behind
    summary = f"restored {done} of {len(jobs)} image(s) into {args.output}"
    summary += f"; {skipped} skipped (output exists)" if skipped else ""
    summary += f"; {failed} failed" if failed else ""
    print(summary)
    return 1 if failed else 0


def _reason(job: Job, err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if str(job.source) in text or str(job.target) in text else f"{job.source}: {text}"
