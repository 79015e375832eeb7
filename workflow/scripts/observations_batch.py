from dmfcore.threads import limit_blas_threads

limit_blas_threads(1)

from dmfcore.datasets import generate_observations  # noqa: E402
from dmfcore.records import logged  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402

# each set as the observations rule makes it, into its own file and log
for member in snakemake.params.members:
    with logged(member["log"]):
        check_code_fingerprint(snakemake.params.code, "datasets")  # computed once, then cached
        generate_observations(
            member["ground_truth"],
            member["outputs"]["observations"],
            member["problem"],
            int(member["n_obs"]),
            int(member["seed"]),
        )
