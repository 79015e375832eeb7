import os

# One BLAS thread per process, as in the workflow: the tests time nothing, but this keeps
# them from oversubscribing the 2-core CI machine when snakemake runs jobs side by side.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The files that take longest (seconds on the 2-core CI machine, measured with --durations):
# under `-n 2 --dist loadfile` each file runs on one worker, so they go first (longest first)
# and the many quick files fill in behind them. xdist would otherwise start with the files
# with the most tests (--loadscope-reorder), which leaves one of these for last on a worker.
SLOW_FILES = ("test_workflow.py", "test_workflow_cases.py", "test_slurm.py", "test_workflow_plans.py",
              "test_docs_browser.py")


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept
