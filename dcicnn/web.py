"""``dcicnn serve``: a web page where a person drops a photo, compares it with its restoration and downloads a PNG.

Gradio (``pip install 'dcicnn[web]'``) is imported only by ``build_app`` and ``serve``. The work of one request,
``PageRestorer``, is plain Python: the upload goes through ``restore_file``, as ``dcicnn restore`` does with a file
(a JPEG's own quantisation tables, large images tiled, 16-bit colour kept), so the downloaded PNG is exactly what
``restore()`` gives for the same file with the same settings.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from PIL import Image, ImageOps

from dcicnn.errors import DcicnnError, InvalidArgumentError, one_line
from dcicnn.imageio import from_sixteen_bit, levels, open_image
from dcicnn.restore.files import restore_file
from dcicnn.restore.inference import file_jpeg_quality
from dcicnn.restore.options import RestoreOptions
from dcicnn.restore.policy import recorded_readings

if TYPE_CHECKING:
    import gradio

    from dcicnn.restore.runner import Restorer

__all__ = ["GRADIO_MISSING", "JPEG_HINTS", "PageRestorer", "PageResult", "build_app", "running"]

GRADIO_MISSING = "the web page needs Gradio: pip install 'dcicnn[web]'"

#: The page's choices for what a JPEG-conditioned model is told, as ``RestoreOptions.jpeg_quality`` takes them
#: ("set" takes the quality slider's value).
JPEG_HINTS = ("auto", "none", "set")

log = logging.getLogger(__name__)


class PageResult(NamedTuple):
    """One restored upload: the two images the page compares, the PNG it offers, and what it says about them."""

    before: Image.Image  # the upload as restore() sees it (EXIF orientation applied), 8 bits per channel
    after: Image.Image  # the result, 8 bits per channel
    png: Path  # the result as saved: PNG (16 bits per channel for a 16-bit upload), TIFF for float pixels
    summary: str  # Markdown


def for_display(image: Image.Image) -> Image.Image:
    """An 8-bit RGB(A) or L copy of ``image`` for a browser: 16-bit and float pixels scaled, other modes converted."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return Image.fromarray(from_sixteen_bit(np.asarray(image)))
    if image.mode == "F":
        return Image.fromarray(levels(np.asarray(image)).astype(np.uint8))
    if image.mode in ("L", "RGB", "RGBA"):
        return image.copy()
    keep_alpha = "A" in image.mode or "transparency" in image.info
    return image.convert("RGBA" if keep_alpha else "RGB")


@dataclasses.dataclass
class PageRestorer:
    """Restores one upload per call with the page's settings on top of ``options`` (device, dtype, tiling)."""

    model: Restorer
    workdir: Path
    options: RestoreOptions = dataclasses.field(default_factory=RestoreOptions)
    max_pixels: int | None = None

    @property
    def takes_jpeg_quality(self) -> bool:
        """Whether the model is told a JPEG quality (a conditioned model), so the page offers the setting."""
        return "jpeg" in tuple(getattr(self.model, "conditions", ()) or ())

    def request_options(self, strength: float, jpeg: str, quality: float | None) -> RestoreOptions:
        """``options`` with the page's strength and JPEG setting; a bad value is an ``InvalidArgumentError``."""
        if jpeg not in JPEG_HINTS:
            raise InvalidArgumentError(f"JPEG quality setting must be one of {', '.join(JPEG_HINTS)}, got {jpeg!r}")
        hint: int | str | None = {"auto": "auto", "none": None}.get(jpeg)
        if jpeg == "set":
            if quality is None:
                raise InvalidArgumentError("choose a JPEG quality 1..100")
            hint = int(round(float(quality)))
        return dataclasses.replace(self.options, strength=float(strength), jpeg_quality=hint)

    def __call__(
        self, upload: str | Path | None, strength: float = 1.0, jpeg: str = "auto", quality: float | None = None
    ) -> PageResult:
        if not upload:
            raise InvalidArgumentError("drop an image file first")
        source = Path(upload)
        options = self.request_options(strength, jpeg, quality)
        with open_image(source, self.max_pixels) as image:
            file_quality = file_jpeg_quality(image)
            before = for_display(image)
            floating = image.mode == "F"  # float pixels: only TIFF holds them
        outdir = Path(tempfile.mkdtemp(prefix="restore-", dir=self.workdir))
        target = outdir / f"{source.stem}-restored{'.tif' if floating else '.png'}"
        notes: list[str] = []
        start = time.perf_counter()
        with recorded_readings() as readings:
            restore_file(self.model, source, target, options, max_pixels=self.max_pixels, note=notes.append)
        seconds = time.perf_counter() - start
        read = readings[0].describe() if readings and (readings[0].tables or readings[0].used) else None
        with Image.open(target) as saved:
            after = for_display(saved)
        lines = [f"**{source.name}**, {before.width} x {before.height}: restored in {seconds:.1f} s."]
        if file_quality is not None:
            lines.append(f"A JPEG file of quality {file_quality} (read from its quantisation tables).")
        if read is not None and options.jpeg_quality == "auto":  # what the pixels add, and what was acted on
            lines.append(f"Read: {read}.")
            notes = [note for note in notes if read not in note]
        if self.takes_jpeg_quality:
            told = {"auto": "auto (the heaviest damage its tables and pixels show)", "none": "nothing (withheld)"}
            lines.append(f"The model was told: JPEG quality {told.get(jpeg, str(options.jpeg_quality))}.")
        lines.append(change_summary(before, after, options.strength))
        lines += [f"Note: {note.replace(str(source), source.name)}." for note in notes]
        return PageResult(before, after, target, "  \n".join(lines))


def change_summary(before: Image.Image, after: Image.Image, strength: float) -> str:
    """One line on how much the restoration changed the pixels (all of them unchanged is an answer too)."""
    a = np.asarray(before, dtype=np.int16)
    b = np.asarray(after, dtype=np.int16)
    if a.shape != b.shape:
        return "Changed: the result has another layout than the upload."
    diff = np.abs(a - b)
    if not diff.any():
        if strength == 0:
            return "Unchanged: strength 0 returns the photo as it is."
        return (
            "Unchanged: the photo shows nothing this model corrects (no JPEG grid and little noise, or a JPEG of "
            "quality 95 or more), so it is returned as it is."
        )
    changed = float((diff.max(axis=-1) if diff.ndim == 3 else diff).astype(bool).mean())
    return f"Changed {changed:.0%} of the pixels, by {float(diff.mean()):.2f} levels of 255 on average."


def _friendly(err: BaseException, upload: str | Path | None) -> str:
    """The error's one line, naming the uploaded file by its name rather than the server's temporary path."""
    message = one_line(err)
    if upload:
        message = message.replace(str(Path(upload)), Path(upload).name)
    return message


def _import_gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry calls from a local tool
    try:
        import gradio
    except ImportError as err:
        raise DcicnnError(GRADIO_MISSING) from err
    return gradio


def build_app(restorer: PageRestorer, *, title: str = "dcicnn", initial: RestoreOptions | None = None) -> gradio.Blocks:
    """The Gradio page around ``restorer``: upload, settings, degraded | restored slider, PNG download, summary.
    ``initial`` gives the settings' starting values (strength, JPEG quality)."""
    gr = _import_gradio()
    start = initial or RestoreOptions()
    start_hint = "auto" if start.jpeg_quality == "auto" else "none" if start.jpeg_quality is None else "set"
    start_quality = start.jpeg_quality if isinstance(start.jpeg_quality, int) else 30

    def handle(upload: str | None, strength: float, jpeg: str, quality: float | None) -> tuple[Any, Any, str]:
        try:
            result = restorer(upload, strength, jpeg, quality)
        except (DcicnnError, OSError) as err:  # the user's file or setting: say what is wrong, in one line
            raise gr.Error(_friendly(err, upload), print_exception=False) from None
        except Exception as err:  # a bug: the traceback goes to the server's log, one line to the page
            log.exception("restoring %s failed", upload)
            raise gr.Error(f"internal error: {_friendly(err, upload)}", print_exception=False) from None
        download = gr.DownloadButton(f"Download {result.png.name}", value=str(result.png), visible=True)
        return (result.before, result.after), download, result.summary

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"# {title}\nDrop a photo damaged by JPEG compression, noise or blur: the page shows it beside its "
            "restoration (drag the slider) and offers the result as a PNG. Large photos are restored tile by tile."
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Photo", file_types=["image"], type="filepath", elem_id="upload")
                strength = gr.Slider(
                    0, 2, value=start.strength, step=0.05, label="Strength", elem_id="strength",
                    info="0 leaves the photo as it is, 1 is the model's output, above 1 more",
                )  # fmt: skip
                jpeg = gr.Radio(
                    list(JPEG_HINTS), value=start_hint, label="JPEG quality the model is told", elem_id="jpeg",
                    info="auto: the file's, else what the pixels show; none: withheld; set: the value below",
                    visible=restorer.takes_jpeg_quality,
                )  # fmt: skip
                quality = gr.Slider(
                    1, 100, value=start_quality, step=1, label="JPEG quality (with 'set')", elem_id="quality",
                    visible=restorer.takes_jpeg_quality,
                )  # fmt: skip
                button = gr.Button("Restore", variant="primary", elem_id="restore")
            with gr.Column(scale=2):
                compare = gr.ImageSlider(
                    label="degraded | restored", type="pil", format="png", image_mode=None, interactive=False,
                    elem_id="compare",
                )  # fmt: skip
                download = gr.DownloadButton("Download PNG", visible=False, elem_id="download")
                summary = gr.Markdown(elem_id="summary")
        inputs = [upload, strength, jpeg, quality]
        outputs = [compare, download, summary]
        upload.upload(handle, inputs, outputs)
        button.click(handle, inputs, outputs)
    return app


@contextmanager
def running(
    restorer_model: Restorer,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    options: RestoreOptions | None = None,
    max_pixels: int | None = None,
    max_file_size: str | None = None,
    title: str = "dcicnn",
) -> Iterator[Any]:
    """Serve the page in a background thread for the ``with`` block; yields the running app (``app.local_url``).

    ``options`` carry the device, dtype and tiling of every restore and the page's starting strength and JPEG
    setting; ``max_file_size`` is Gradio's upload limit (e.g. ``"100mb"``)."""
    _import_gradio()  # the one clear message if it is missing, before any work
    options = options or RestoreOptions()
    with tempfile.TemporaryDirectory(prefix="dcicnn-serve-") as workdir:
        restorer = PageRestorer(restorer_model, Path(workdir), options, max_pixels)
        app = build_app(restorer, title=title, initial=options)
        app.queue(default_concurrency_limit=1)  # one restore at a time: each already uses every core
        app.launch(
            server_name=host, server_port=port, prevent_thread_lock=True, share=False, inbrowser=False,
            show_error=True, allowed_paths=[workdir], max_file_size=max_file_size, quiet=True,
        )  # fmt: skip
        try:
            yield app
        finally:
            app.close()

