"""BLAS thread pinning (must run before NumPy is imported to take effect)."""

import os

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(n: int = 1, override: bool = True) -> None:
    """Set the BLAS thread-count variables to ``n``.

    One thread per process is fastest at d = 100 (two threads were far slower on the
    reference machine); parallelism comes from running jobs side by side.
    """
    for var in BLAS_THREAD_VARIABLES:
        if override:
            os.environ[var] = str(n)
        else:
            os.environ.setdefault(var, str(n))
