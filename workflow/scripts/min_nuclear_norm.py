from dmfcore.threads import limit_blas_threads

limit_blas_threads(snakemake.threads)

from dmfcore.baselines import run_min_nuclear_norm  # noqa: E402
from dmfcore.records import RunOutputs, logged  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402
from dmfcore.codediff import append_module_hashes  # noqa: E402

out = snakemake.output
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "baselines")
    run_min_nuclear_norm(
        snakemake.input.get("ground_truth"),  # none for real data
        snakemake.input.observations,
        RunOutputs(out.matrix, out.metrics, snakemake.log[0]),
        seed=int(snakemake.wildcards.seed),
        solver=snakemake.params.get("solver", "auto"),
        tol=snakemake.params.tol,
    )

# which modules computed the result, for `dmf why` (dmfcore.codediff)
append_module_hashes(snakemake.log[0], "baselines")
