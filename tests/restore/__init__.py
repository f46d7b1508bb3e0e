"""Tests of dcicnn/restore."""
