from dmfcore.experiment import logged
from dmfcore.plots import draw_figure

w = snakemake.wildcards
with logged(snakemake.log[0]):
    draw_figure(
        w.figure,
        snakemake.input.table,
        snakemake.input.trajectories,
        snakemake.output.png,
        snakemake.output.pdf,
    )
