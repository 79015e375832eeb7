rule figure:
    input:
        table="results/tables/{experiment}.parquet",
        trajectories="results/tables/{experiment}_trajectories.parquet",
        # the plotting code itself: editing it re-draws the figures (and nothing else)
        code=workflow.source_path("../../src/dmfcore/plots.py"),
    output:
        png=report(
            "results/figures/{experiment}_{figure}.png",
            caption="../report/figure.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "{figure}"},
        ),
        pdf="results/figures/{experiment}_{figure}.pdf",
    log:
        "results/logs/figures/{experiment}_{figure}.log",
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        "../scripts/figure.py"
