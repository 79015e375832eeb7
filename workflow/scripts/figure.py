from dmfcore.plots import draw_figure
from dmfcore.provenance import check_code_fingerprint
from dmfcore.records import logged

w = snakemake.wildcards
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "plots")
    draw_figure(
        w.figure,
        snakemake.input.table,
        snakemake.input.trajectories,
        snakemake.output.png,
        snakemake.output.pdf,
        dict(snakemake.params.missing),
    )
