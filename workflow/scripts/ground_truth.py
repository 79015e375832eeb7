from dmfcore.threads import limit_blas_threads

limit_blas_threads(1)

from dmfcore.datasets import generate_ground_truth  # noqa: E402
from dmfcore.records import logged  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402

data = snakemake.params.synthetic
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "datasets")
    generate_ground_truth(
        snakemake.output[0], data["d1"], data["d2"], data["rank"], int(snakemake.wildcards.seed)
    )
