"""``dcicnn restore INPUT... -o OUTDIR``: restore files, folders and globs; one bad file never stops the others."""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from tqdm import tqdm

from dcicnn.errors import DcicnnError, InvalidArgumentError, WeightsNotFoundError, one_line
from dcicnn.imageio import readable_extensions, save_image_atomic
from dcicnn.restore.files import output_path, restore_file, save_options
from dcicnn.restore.options import RestoreOptions
from dcicnn_cli.options import add_inference_arguments, check_device_dtype, inference_options

if TYPE_CHECKING:  # torch is imported when a model is loaded, not for `--help`
    from dcicnn.model import DCICNN
    from dcicnn.restore.distributed import RestoreJob

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
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR", help="output folder")
    parser.add_argument("--model", help="weights: a bundled name (`dcicnn models`), a directory or a Hub repo id "
        "(default: default)")
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
    hf = parser.add_argument_group(
        "Hugging Face datasets",
        "restore every image of a dataset instead of INPUTs: a Hub id, or imagefolder / parquet with --data-dir",
    )
    hf.add_argument("--hf", metavar="DATASET", help="dataset to restore (e.g. user/photos, imagefolder, parquet)")
    hf.add_argument("--split", default="train", help="split to restore (default train)")
    hf.add_argument("--image-column", default="image", help="column holding the images (default image)")
    hf.add_argument("--data-dir", help="local folder of an imagefolder or parquet dataset (or a Hub sub-folder)")
    hf.add_argument("--dataset-revision", help="Hub revision of --hf")
    hf.add_argument(
        "--streaming",
        action="store_true",
        help="read the rows as they arrive instead of downloading the dataset first (for sets larger than the disk)",
    )
    hf.add_argument(
        "--to-parquet",
        action="store_true",
        help="write a parquet dataset that keeps every other column (shards of --shard-rows rows) instead of image "
        "files; read it back with datasets.load_dataset('parquet', data_dir=OUTDIR)",
    )
    hf.add_argument("--shard-rows", type=int, default=256, help="rows per parquet shard (default 256)")
    many = parser.add_argument_group(
        "many devices",
        "run as a Lightning predict with DDP: each image restored on exactly one device, outputs written by each rank",
    )
    many.add_argument("--devices", type=int, help="devices per node (processes); e.g. 8 GPUs, or 2 CPU processes")
    many.add_argument("--num-nodes", type=int, default=1, help="nodes (with --devices; launched as Lightning expects)")
    many.add_argument("--accelerator", default="auto", help="with --devices: auto, cpu, gpu (default auto)")
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
            every = [p for p in path.rglob("*") if p.is_file()]
            found = sorted(p for p in every if not p.resolve().is_relative_to(out))
            files = [p for p in found if p.suffix.lower() in extensions]
            if not files and any(p.suffix.lower() in extensions for p in every):
                errors.append(
                    f"{item}: every image in it is under the output folder {output}, whose files are never inputs; "
                    f"write into another folder (e.g. -o {path.name or 'restored'}-restored)"
                )
                continue
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


def resolved(job: Job) -> Job:
    """``job`` with the target its image is really written to: a TIFF for floating-point pixels that the asked-for
    format cannot hold (``output_path``). An unreadable input keeps its target; restoring it says why."""
    try:
        with Image.open(job.source) as image:  # reads the header only
            mode = image.mode
    except Exception:  # noqa: BLE001 - whatever Pillow raises on a bad header, restoring the file reports it in one line
        return job
    return Job(job.source, output_path(mode, job.target))


def restore_one(model: DCICNN, job: Job, args: argparse.Namespace, options: RestoreOptions, inputs: set[Path]) -> None:
    """Restore ``job`` (already ``resolved``), never over an input, and over an existing output only if asked."""
    if job.target.resolve() in inputs:
        raise InvalidArgumentError(f"the output {job.target} would overwrite an input")
    if job.target.exists() and not args.overwrite:
        raise FileExistsError(f"{job.target} exists (pass --overwrite to replace it, or --skip-existing to keep it)")
    restore_file(
        model, job.source, job.target, options, max_pixels=args.max_pixels, quality=args.quality,
        note=lambda message: tqdm.write(f"dcicnn restore: note: {message}", file=sys.stderr),
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``dcicnn restore``: files, folders and globs (here or on several devices), or a dataset (``--hf``)."""
    options = check_arguments(args)
    if args.hf is not None:
        return run_dataset(args, options)
    extension = None if args.format == "same" else FORMATS[args.format]
    jobs, errors = collect(args.inputs, args.output, extension, args.keep_extension)
    for line in errors:
        print(f"dcicnn restore: error: {line}", file=sys.stderr)
    model = load_model_source(args.model, args.revision)
    check_device_dtype(model, options)  # a device this machine lacks: one line, nothing created
    if args.devices is not None:
        return run_files_distributed(args, options, model, jobs, len(errors))
    return run_files(args, options, model, jobs, len(errors), extension)


def check_arguments(args: argparse.Namespace) -> RestoreOptions:
    """Every option checked before any work, and once, not once per image: the restore options, or one clear error."""
    options = inference_options(args, ensemble=args.ensemble)
    if not 1 <= args.quality <= 100:
        raise InvalidArgumentError(f"--quality must be in 1..100, got {args.quality}")
    if args.devices is not None:
        if args.devices < 1 or args.num_nodes < 1:
            raise InvalidArgumentError("--devices and --num-nodes must be >= 1")
        if args.device is not None:
            raise InvalidArgumentError("--device picks one device; with --devices each process gets its own")
        if args.to_parquet:
            raise InvalidArgumentError("--to-parquet runs on one device; --devices writes image files")
    if args.hf is None:
        if not args.inputs:
            raise InvalidArgumentError("give at least one INPUT (file, folder or glob), or a dataset with --hf")
        if args.to_parquet:
            raise InvalidArgumentError("--to-parquet writes a dataset: it needs --hf")
    return options


def run_files_distributed(
    args: argparse.Namespace, options: RestoreOptions, model: DCICNN, jobs: list[Job], failed: int
) -> int:
    """``--devices N``: the files restored as a Lightning predict, each on exactly one device."""
    inputs = {job.source.resolve() for job in jobs}
    targets = [job.target for job in jobs]
    if len(set(targets)) < len(targets):
        raise InvalidArgumentError("two inputs share an output name; pass --keep-extension")
    from dcicnn.restore.distributed import RestoreJob

    def process_file(job: RestoreJob, network: DCICNN) -> None:
        assert job.source is not None
        restore_one(network, resolved(Job(job.source, job.target)), args, options, inputs)

    todo = [RestoreJob(job.target, source=job.source) for job in jobs]
    return run_distributed(args, model, todo, process_file, len(jobs), failed)


def run_files(
    args: argparse.Namespace,
    options: RestoreOptions,
    model: DCICNN,
    jobs: list[Job],
    failed: int,
    extension: str | None,
) -> int:
    """The files restored one by one here; a file's problem is one line, and the others go on."""
    created = jobs and not args.output.exists()
    if jobs:
        args.output.mkdir(parents=True, exist_ok=True)
        if not os.access(args.output, os.W_OK):
            raise PermissionError(f"{args.output}: output folder is not writable")
    inputs = {job.source.resolve() for job in jobs}
    claimed: dict[Path, Path] = {}
    skipped, done = 0, 0
    jobs = [resolved(job) for job in jobs]
    as_tiff = 0  # floating-point images written as TIFF because the asked-for format cannot hold them
    remaining = jobs
    if not args.overwrite and not args.skip_existing:  # outputs of an earlier run: one line, not one per file
        existing = [job for job in jobs if job.target.exists() and job.target.resolve() not in inputs]
        if existing:
            print(
                f"dcicnn restore: error: {len(existing)} of {len(jobs)} output(s) already exist in {args.output} "
                f"(e.g. {existing[0].target}); pass --overwrite to replace them, or --skip-existing to keep them",
                file=sys.stderr,
            )
            failed += len(existing)
            remaining = [job for job in jobs if job not in existing]
    try:
        for job in tqdm(remaining, desc="restoring", unit="image", disable=None, file=sys.stderr):
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
                as_tiff += job.target.suffix == ".tif" and extension not in (".tif", None)
            except (DcicnnError, OSError) as err:  # this file's problem: say so and go on with the others
                failed += 1
                tqdm.write(f"dcicnn restore: error: {_reason(job, err)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"interrupted: restored {done} of {len(jobs)} image(s) into {args.output}", file=sys.stderr)
        raise
    finally:
        if created and not any(args.output.iterdir()):
            args.output.rmdir()  # nothing was written: leave no empty folder behind
    # a folder that was never made (nothing to restore, or every input failed before writing) is not named
    summary = f"restored {done} of {len(jobs)} image(s)" if jobs else "no image to restore"
    summary += f" into {args.output}" if jobs and args.output.is_dir() else ""
    if as_tiff:
        summary += f" ({as_tiff} floating-point image(s) as TIFF: --format {args.format} cannot hold them)"
    summary += f"; {skipped} skipped (output exists)" if skipped else ""
    summary += f"; {failed} failed" if failed else ""
    print(summary)
    return 1 if failed else 0


def run_dataset(args: argparse.Namespace, options: RestoreOptions) -> int:
    """``--hf``: every image of a dataset into image files or, with ``--to-parquet``, a parquet dataset."""
    import datasets

    from dcicnn.restore.datasets import restore_to_files, restore_to_parquet
    from dcicnn.train.sources import HFDataset

    datasets.disable_progress_bars()  # one bar, ours, over the images or shards

    if args.inputs:
        raise InvalidArgumentError("give INPUTs or --hf, not both")
    if args.format == "same":
        raise InvalidArgumentError("--format same needs input files; a dataset's images are written as --format")
    if args.shard_rows < 1:
        raise InvalidArgumentError(f"--shard-rows must be >= 1, got {args.shard_rows}")
    if args.overwrite:
        raise InvalidArgumentError("--overwrite is for files; clear OUTDIR or use --skip-existing to resume")
    model = load_model_source(args.model, args.revision)
    check_device_dtype(model, options)
    spec = HFDataset(
        args.hf,
        split=args.split,
        image_column=args.image_column,
        data_dir=args.data_dir,
        revision=args.dataset_revision,
        streaming=args.streaming,
    )
    if args.streaming and args.devices is not None:
        raise InvalidArgumentError("--devices needs a downloaded dataset (each process picks rows by index)")
    dataset = _load_dataset(spec)
    existing = args.output.is_dir() and any(args.output.iterdir())
    if existing and not args.skip_existing:
        raise FileExistsError(f"{args.output} is not empty (pass --skip-existing to resume into it)")

    def progress(items: Any) -> Any:
        unit = "shard" if args.to_parquet else "image"
        return tqdm(items, desc="restoring", unit=unit, disable=None, file=sys.stderr)

    if args.devices is not None:
        from dcicnn.restore.datasets import decode, image_names
        from dcicnn.restore.distributed import RestoreJob

        extension = FORMATS[args.format]
        names = image_names(dataset, spec.image_column)  # the paths only: no image bytes read for naming
        todo = [RestoreJob(args.output / (name + extension), row=index) for index, name in enumerate(names)]

        def process_row(job: RestoreJob, network: DCICNN) -> None:
            restored = network.restore(decode(dataset[job.row][spec.image_column]), options=options)
            save_image_atomic(restored, job.target, **save_options(restored, job.target, args.quality))

        args.output.mkdir(parents=True, exist_ok=True)
        return run_distributed(args, model, todo, process_row, len(todo), 0)
    if args.to_parquet:
        report = restore_to_parquet(
            model, dataset, spec.image_column, args.output, options,
            shard_rows=args.shard_rows, skip_existing=args.skip_existing, progress=progress,
        )  # fmt: skip
    else:
        extension = FORMATS[args.format]

        def save(image: Image.Image, target: Path) -> None:
            save_image_atomic(image, target, **save_options(image, target, args.quality))

        report = restore_to_files(
            model, dataset, spec.image_column, args.output, options,
            extension=extension, skip_existing=args.skip_existing, save=save, progress=progress,
        )  # fmt: skip
    for index, reason in report.failed:
        print(f"dcicnn restore: error: {args.hf} row {index}: {reason}", file=sys.stderr)
    total = report.done + report.skipped + len(report.failed)  # a streaming dataset has no length beforehand
    summary = f"restored {report.done} of {total} image(s) of {args.hf} ({args.split}) into {args.output}"
    summary += f"; {report.skipped} skipped (output exists)" if report.skipped else ""
    summary += f"; {len(report.failed)} failed" if report.failed else ""
    print(summary)
    return 1 if report.failed else 0


def run_distributed(
    args: argparse.Namespace,
    model: DCICNN,
    jobs: list[RestoreJob],
    process: Callable[[RestoreJob, DCICNN], None],
    total: int,
    failed_before: int,
) -> int:
    """``--devices``: the jobs as a Lightning predict over ``devices x num_nodes`` processes (DDP when more than
    one). Finished outputs are left alone with --skip-existing; without it or --overwrite an existing output fails
    as on one device."""
    import logging
    import warnings

    import lightning as L

    from dcicnn.restore.distributed import JobRunner, RestoreDataModule, pending
    from dcicnn_cli.train import quiet_third_party_notices

    # Lightning's notices (devices found, process-group set-up, a tip) are not a restore user's business; its
    # warnings and errors still show.
    quiet_third_party_notices()
    warnings.filterwarnings("ignore", message=r"predict returned None if it was on purpose")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

    todo = pending(jobs) if args.skip_existing else jobs
    skipped = len(jobs) - len(todo)
    args.output.mkdir(parents=True, exist_ok=True)
    several = args.devices * args.num_nodes > 1
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy="ddp" if several else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        default_root_dir=str(args.output),
    )
    restorer = JobRunner(model, process)
    try:
        trainer.predict(restorer, datamodule=RestoreDataModule(todo), return_predictions=False)
    finally:  # gloo's threads torn down now, not by the interpreter's exit (which could abort: "terminate called")
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    for job, reason in restorer.failed:  # each rank names its own failures
        source = job.source if job.source is not None else f"{args.hf} row {job.row}"
        print(f"dcicnn restore: error: {reason if str(source) in reason else f'{source}: {reason}'}", file=sys.stderr)
    done, failed = restorer.totals
    failed += failed_before
    if trainer.is_global_zero:
        summary = f"restored {done} of {total} image(s) into {args.output} on {trainer.world_size} process(es)"
        summary += f"; {skipped} skipped (output exists)" if skipped else ""
        summary += f"; {failed} failed" if failed else ""
        print(summary)
    return 1 if failed else 0


def _load_dataset(spec: Any) -> Any:
    """The dataset, or one line saying why not (no such dataset, split or column; no network)."""
    try:
        return spec.load()
    except DcicnnError:
        raise
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise InvalidArgumentError(f"cannot load dataset {spec.path!r}: {one_line(err)}") from err


def _reason(job: Job, err: BaseException) -> str:
    text = one_line(err)
    return text if str(job.source) in text or str(job.target) in text else f"{job.source}: {text}"
