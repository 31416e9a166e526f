"""Evaluation tasks (see ppnas.engine.protocols.Task): one module per product."""
