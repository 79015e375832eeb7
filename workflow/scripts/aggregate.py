from dmfcore.experiment import aggregate_records, aggregate_trajectories, logged
from dmfcore.provenance import check_code_fingerprint

experiment = snakemake.wildcards.experiment
code = snakemake.params.code
with logged(snakemake.log[0]):
    check_code_fingerprint(code)
    aggregate_records(list(snakemake.input.metrics), snakemake.output.table, experiment, code)
    aggregate_trajectories(
        list(snakemake.input.trajectories),
        snakemake.output.trajectories,
        experiment,
        dict(snakemake.params.recording),
    )
