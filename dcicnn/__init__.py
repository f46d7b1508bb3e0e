"""dcicnn: restore photos damaged by JPEG compression, blur and noise with DCI-CNN."""

from dcicnn.hub import WeightsMismatchError, WeightsNotFoundError
from dcicnn.model import DCICNN

__all__ = ["DCICNN", "WeightsMismatchError", "WeightsNotFoundError", "__version__"]
__version__ = "0.1.0"
