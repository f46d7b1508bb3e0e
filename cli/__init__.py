"""The ``dcicnn`` command-line app (installed as the ``dcicnn_cli`` package)."""
