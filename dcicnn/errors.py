"""Errors a user of dcicnn can cause, in a module that imports nothing heavy (the CLI catches them at start-up)."""

from __future__ import annotations

__all__ = ["TrainingDivergedError", "WeightsMismatchError", "WeightsNotFoundError"]


class WeightsNotFoundError(FileNotFoundError):
    """The directory, Hub repo, revision or weights file asked for does not exist (or is not reachable)."""


class WeightsMismatchError(ValueError):
    """The stored weights do not fit the architecture that ``config.json`` describes."""


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; training stopped before the weights were updated with it."""
