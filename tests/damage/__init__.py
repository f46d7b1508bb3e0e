"""Tests of dcicnn/damage."""
