"""One module per report figure; style.py holds what they share."""
