"""repolens: self-hosted code intelligence."""

import os

# NumPy's OpenBLAS otherwise starts one busy-waiting thread per core for every matrix-vector
# product; ours (a query against a few thousand vectors) take well under a millisecond on one
# thread, and the server gets its parallelism from concurrent requests. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
