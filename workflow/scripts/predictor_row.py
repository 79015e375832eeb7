from dmfcore.experiment import logged, predictor_record
from dmfcore.provenance import check_code_fingerprint

w = snakemake.wildcards
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code)
    predictor_record(
        snakemake.input.observations,
        w.predictor,
        snakemake.output.metrics,
        seed=int(w.seed),
    )
