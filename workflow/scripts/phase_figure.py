from dmfcore.plots import draw_phase_figures
from dmfcore.provenance import check_code_fingerprint
from dmfcore.records import logged

with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "plots")
    draw_phase_figures(snakemake.input.phase, snakemake.input.thresholds, dict(snakemake.output.items()))
