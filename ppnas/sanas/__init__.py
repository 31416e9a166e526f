"""SANAS: PaddleSlim's simulated annealing, training every candidate (the loop is `search.py`)."""
