"""Tests of dcicnn/train."""
