"""The errors a user of dcicnn can cause, in a module that imports nothing heavy.

Every one derives from ``DcicnnError`` (and from the built-in exception it refines, so ``except ValueError`` and
the like keep working): the command line turns a ``DcicnnError`` into one line and exit status 1, and lets anything
else - a bug - keep its traceback.
"""

from __future__ import annotations

__all__ = [
    "DcicnnError",
    "ExportVerificationError",
    "ImageReadError",
    "InvalidArgumentError",
    "TrainingDivergedError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "one_line",
]


def one_line(err: BaseException) -> str:
    """An error's message on one line (whitespace runs collapsed), or its type's name if it has none: how the
    command line and the per-image reports of batch restores state a failure."""
    return " ".join(str(err).split()) or type(err).__name__


class DcicnnError(Exception):
    """Base of the errors a user can cause: a bad argument, file, image, model or run."""


class InvalidArgumentError(DcicnnError, ValueError):
    """A value a user gave (an argument, an option, a config entry, a protocol name) is not valid."""


class ImageReadError(DcicnnError, OSError):
    """An image file that cannot be read or restored, with a one-line reason a user can act on."""


class WeightsNotFoundError(DcicnnError, FileNotFoundError):
    """The directory, Hub repo, revision or weights file asked for does not exist (or is not reachable)."""


class WeightsMismatchError(DcicnnError, ValueError):
    """The stored weights (or their config) do not fit the architecture that ``config.json`` describes."""


class TrainingDivergedError(DcicnnError, FloatingPointError):
    """The training loss became NaN or infinite; training stopped before the weights were updated with it."""


class ExportVerificationError(DcicnnError, ValueError):
    """An exported file (ONNX, TorchScript) does not reproduce the PyTorch model; nothing was written."""
