"""Tests of dcicnn/hub."""
