"""Evaluation tasks (see ppnas.search.Task): one module per product."""
