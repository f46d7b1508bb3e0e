"""A trained ``DCICNN`` for other runtimes: ONNX and TorchScript (``runtimes``), spandrel's DnCNN layout for chaiNNer
and ComfyUI (``spandrel``)."""
