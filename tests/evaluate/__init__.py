"""Tests of dcicnn/evaluate."""
