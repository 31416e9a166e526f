"""Evaluation tasks (see ppnas.sanas.search.Task): one module per product."""
