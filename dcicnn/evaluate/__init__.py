"""Evaluation: protocols x images x methods -> per-image metrics, tables, plots, image grids and the classical
baselines (``dcicnn evaluate``)."""
