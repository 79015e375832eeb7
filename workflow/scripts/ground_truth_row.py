from dmfcore.threads import limit_blas_threads

limit_blas_threads(1)

from dmfcore.baselines import ground_truth_record  # noqa: E402
from dmfcore.records import logged  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402
from dmfcore.codediff import append_module_hashes  # noqa: E402

with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "baselines")
    ground_truth_record(
        snakemake.input.ground_truth,
        snakemake.input.observations,
        snakemake.output.metrics,
        seed=int(snakemake.wildcards.seed),
    )

# which modules computed the result, for `dmf why` (dmfcore.codediff)
append_module_hashes(snakemake.log[0], "baselines")
