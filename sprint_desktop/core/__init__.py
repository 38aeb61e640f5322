"""Pure-Python core: requests, results, errors, schedule math, noise, paths, PNG metadata.

Nothing here imports torch or Qt (checked by tests/test_boundaries.py).
"""
