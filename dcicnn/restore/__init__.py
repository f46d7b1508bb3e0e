"""Running a network on images: ``RestoreOptions``, tiling and the runner, how much to correct, the PIL / numpy /
torch adapters, image files, Hugging Face datasets and many devices. It knows networks only through the
``Restorer`` protocol (a ``ModelSpec`` and an inference copy), never the ``DCICNN`` class."""
