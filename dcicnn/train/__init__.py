"""Training: the degradations and evaluation protocols, image sources, the ``DegradationDataModule``, the
``RestorationModule`` (a LightningModule around a ``DCICNN``) and its callbacks, throughput and logger helpers.
Imports Lightning, albumentations and torchmetrics: nothing below it does."""
