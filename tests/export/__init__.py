"""Tests of dcicnn/export."""
