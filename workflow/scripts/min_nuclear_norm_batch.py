from dmfcore.threads import limit_blas_threads

limit_blas_threads(snakemake.threads)

from dmfcore.baselines import run_min_nuclear_norm  # noqa: E402
from dmfcore.records import RunOutputs, logged  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402
from dmfcore.codediff import append_module_hashes  # noqa: E402

# each set as min_nuclear_norm solves it, into its own files and log
for member in snakemake.params.members:
    out = member["outputs"]
    with logged(member["log"]):
        check_code_fingerprint(snakemake.params.code, "baselines")  # computed once, then cached
        run_min_nuclear_norm(
            member.get("ground_truth"),
            member["observations"],
            RunOutputs(out["matrix"], out["metrics"], member["log"]),
            seed=int(member["seed"]),
            solver=snakemake.params.get("solver", "auto"),
            tol=snakemake.params.tol,
        )
    # which modules computed the result, for `dmf why` (dmfcore.codediff)
    append_module_hashes(member["log"], "baselines")
