from dmfcore.provenance import check_code_fingerprint
from dmfcore.records import logged
from dmfcore.tables import aggregate_records, aggregate_trajectories

experiment = snakemake.wildcards.experiment
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "tables")
    aggregate_records(
        list(snakemake.input.metrics),
        snakemake.output.table,
        experiment,
        dict(snakemake.params.producers),
    )
    aggregate_trajectories(
        list(snakemake.input.trajectories),
        snakemake.output.trajectories,
        experiment,
        dict(snakemake.params.recording),
    )
