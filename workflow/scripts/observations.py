from dmfcore.threads import limit_blas_threads

limit_blas_threads(1)

from dmfcore.datasets import generate_observations  # noqa: E402
from dmfcore.records import logged  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402

w = snakemake.wildcards
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "datasets")
    generate_observations(
        snakemake.input.ground_truth, snakemake.output[0], w.problem, int(w.n_obs), int(w.seed)
    )
