import pandas as pd

from dmfcore.plots import save_figure, theory_figure
from dmfcore.provenance import check_code_fingerprint
from dmfcore.records import logged

with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "plots")
    figure = theory_figure(
        snakemake.wildcards.check,
        pd.read_parquet(snakemake.input.table),
        pd.read_parquet(snakemake.input.points),
    )
    save_figure(figure, snakemake.output.png, snakemake.output.pdf)
