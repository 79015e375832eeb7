from dmfcore.baselines import predictor_record
from dmfcore.records import logged
from dmfcore.provenance import check_code_fingerprint

w = snakemake.wildcards
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "baselines")
    predictor_record(
        snakemake.input.observations,
        w.predictor,
        snakemake.output.metrics,
        seed=int(w.seed),
    )
