"""Weights shipped inside the package, one Hub-layout folder per name (``default`` is what
``DCICNN.from_pretrained()`` loads with no argument)."""
