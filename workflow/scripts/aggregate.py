from dmfcore.experiment import aggregate_records, aggregate_trajectories, logged

experiment = snakemake.wildcards.experiment
with logged(snakemake.log[0]):
    aggregate_records(list(snakemake.input.metrics), snakemake.output.table, experiment)
    aggregate_trajectories(
        list(snakemake.input.trajectories), snakemake.output.trajectories, experiment
    )
