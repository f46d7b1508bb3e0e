"""dcicnn: restore photos damaged by JPEG compression, blur and noise with DCI-CNN.

The public names are re-exported lazily (PEP 562): ``import dcicnn`` and ``from dcicnn import DCICNN`` load the
network and its Hub loading (torch, huggingface_hub) only, never Lightning, albumentations or torchmetrics, which the
training names (``RestorationModule``, ``DegradationDataModule``) bring in when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "DCICNN": "dcicnn.model",
    "Damage": "dcicnn.damage.record",
    "ModelSpec": "dcicnn.spec",
    "RestoreOptions": "dcicnn.restore.options",
    "WeightsMismatchError": "dcicnn.errors",
    "WeightsNotFoundError": "dcicnn.errors",
    "PROTOCOLS": "dcicnn.train.degradations",
    "Degradation": "dcicnn.train.degradations",
    "DegradationMix": "dcicnn.train.degradations",
    "apply_protocol": "dcicnn.train.degradations",
    "protocol_target": "dcicnn.train.degradations",
    "HFDataset": "dcicnn.train.sources",
    "DegradationDataModule": "dcicnn.train.data",
    "RestorationModule": "dcicnn.train.module",
    "TrainingDivergedError": "dcicnn.errors",
    "estimate_jpeg_quality": "dcicnn.damage.conditions",
    "estimate_noise": "dcicnn.damage.conditions",
}

__all__ = [
    "DCICNN",
    "PROTOCOLS",
    "Damage",
    "Degradation",
    "DegradationDataModule",
    "DegradationMix",
    "HFDataset",
    "ModelSpec",
    "RestorationModule",
    "RestoreOptions",
    "TrainingDivergedError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "__version__",
    "apply_protocol",
    "estimate_jpeg_quality",
    "estimate_noise",
    "protocol_target",
]

if TYPE_CHECKING:
    from dcicnn.damage.conditions import estimate_jpeg_quality, estimate_noise
    from dcicnn.damage.record import Damage
    from dcicnn.errors import TrainingDivergedError, WeightsMismatchError, WeightsNotFoundError
    from dcicnn.model import DCICNN
    from dcicnn.restore.options import RestoreOptions
    from dcicnn.spec import ModelSpec
    from dcicnn.train.data import DegradationDataModule
    from dcicnn.train.degradations import PROTOCOLS, Degradation, DegradationMix, apply_protocol, protocol_target
    from dcicnn.train.module import RestorationModule
    from dcicnn.train.sources import HFDataset


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dcicnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
