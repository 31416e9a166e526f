"""Generators of small datasets in real on-disk formats, for demos and tests (nothing is downloaded)."""
