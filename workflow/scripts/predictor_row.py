from dmfcore.real_data import predictor_record
from dmfcore.records import logged
from dmfcore.provenance import check_code_fingerprint
from dmfcore.codediff import append_module_hashes

w = snakemake.wildcards
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "real_data")
    predictor_record(
        snakemake.input.observations,
        w.predictor,
        snakemake.output.metrics,
        seed=int(w.seed),
    )

# which modules computed the result, for `dmf why` (dmfcore.codediff)
append_module_hashes(snakemake.log[0], "real_data")
