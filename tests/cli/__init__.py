"""Tests of the dcicnn command (cli/, installed as dcicnn_cli)."""
