rule figure:
    input:
        table=f"{OUT}/tables/{{experiment}}.parquet",
        trajectories=f"{OUT}/tables/{{experiment}}_trajectories.parquet",
    output:
        png=report(
            f"{OUT}/figures/{{experiment}}_{{figure}}.png",
            caption="../report/figure.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "{figure}"},
        ),
        pdf=f"{OUT}/figures/{{experiment}}_{{figure}}.pdf",
    log:
        f"{OUT}/logs/figures/{{experiment}}_{{figure}}.log",
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        # the plotting code: editing it redraws the figures (and nothing else)
        code=CODE["plots"],
        # datasets whose data are missing: the figure says why
        missing=missing_data,
    script:
        "../scripts/figure.py"
