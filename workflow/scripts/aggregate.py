from dmfcore.experiment import aggregate_records, logged

with logged(snakemake.log[0]):
    aggregate_records(list(snakemake.input), snakemake.output[0], snakemake.wildcards.experiment)
