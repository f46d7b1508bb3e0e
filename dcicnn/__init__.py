"""dcicnn: restore photos damaged by JPEG compression, blur and noise with DCI-CNN."""

from dcicnn.data import DegradationDataModule, HFDataset
from dcicnn.degradations import PROTOCOLS, Degradation, DegradationMix, apply_protocol, protocol_target
from dcicnn.hub import WeightsMismatchError, WeightsNotFoundError
from dcicnn.model import DCICNN
from dcicnn.training import RestorationModule

__all__ = [
    "DCICNN",
    "PROTOCOLS",
    "Degradation",
    "DegradationMix",
    "DegradationDataModule",
    "HFDataset",
    "RestorationModule",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "__version__",
    "apply_protocol",
    "protocol_target",
]
__version__ = "0.1.0"
