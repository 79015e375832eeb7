import os

# One BLAS thread per process, as in the workflow: the tests time nothing, but this keeps
# them from oversubscribing the 2-core CI machine when snakemake runs jobs side by side.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
