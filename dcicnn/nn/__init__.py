"""The networks of the DCI-CNN family as pure ``nn.Module`` bodies: no Hub, no inference policy, no damage reading.

``PlainNet`` is the paper's stack of 3x3 convolutions; ``UNet`` is the family's multi-scale member. ``dcicnn.DCICNN``
wraps one of them with the image/condition plumbing, the Hub and ``restore``.
"""

from dcicnn.nn.plain import PlainNet
from dcicnn.nn.unet import ResidualBlock, UNet

__all__ = ["PlainNet", "ResidualBlock", "UNet"]
