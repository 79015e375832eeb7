from dmfcore.phase import write_phase_tables
from dmfcore.provenance import check_code_fingerprint
from dmfcore.records import logged

with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "phase")
    write_phase_tables(snakemake.input.table, snakemake.output.phase, snakemake.output.thresholds,
                       **dict(snakemake.params.phase))
