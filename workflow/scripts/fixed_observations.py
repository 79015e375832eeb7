from dmfcore.datasets import generate_fixed_observations
from dmfcore.provenance import check_code_fingerprint
from dmfcore.records import logged

w = snakemake.wildcards
fixed = snakemake.params.fixed
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "datasets")
    generate_fixed_observations(
        snakemake.output[0],
        fixed["observed"],
        tuple(fixed["shape"]),
        seed=int(w.seed),
        dataset=w.dataset,
    )
