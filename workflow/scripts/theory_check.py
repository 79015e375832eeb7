from dmfcore.threads import limit_blas_threads

limit_blas_threads(1)

from dmfcore.records import logged  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402
from dmfcore.theory import run_theory_check  # noqa: E402

with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "theory")
    run_theory_check(
        snakemake.wildcards.check, snakemake.output.table, snakemake.output.points
    )
