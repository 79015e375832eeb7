# Recovery phase diagrams (dmfcore.phase): for experiments with a `phase` block, success counts
# per method and n_obs with binomial intervals, the logistic n_obs at 50% success with bootstrap
# intervals over seeds, the ratio of each depth's to the minimum nuclear norm's, and (Gaussian
# sensing) the asymptotic nuclear norm transition of Donoho, Gavish & Montanari (2013).
rule phase_tables:
    input:
        table=f"{OUT}/tables/{{experiment}}.parquet",
    output:
        phase=f"{OUT}/tables/{{experiment}}_phase.parquet",
        thresholds=f"{OUT}/tables/{{experiment}}_phase_thresholds.parquet",
    log:
        f"{OUT}/logs/phase/{{experiment}}.log",
    wildcard_constraints:
        experiment=PHASE_EXPERIMENTS,
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        code=CODE["phase"],
        phase=phase_params,
    script:
        "../scripts/phase_tables.py"


rule phase_figure:
    input:
        phase=f"{OUT}/tables/{{experiment}}_phase.parquet",
        thresholds=f"{OUT}/tables/{{experiment}}_phase_thresholds.parquet",
    output:
        phase_png=report(
            f"{OUT}/figures/{{experiment}}_phase.png",
            caption="../report/phase.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "phase"},
        ),
        phase_pdf=f"{OUT}/figures/{{experiment}}_phase.pdf",
        phase_heatmap_png=report(
            f"{OUT}/figures/{{experiment}}_phase_heatmap.png",
            caption="../report/phase.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "figure": "phase_heatmap"},
        ),
        phase_heatmap_pdf=f"{OUT}/figures/{{experiment}}_phase_heatmap.pdf",
    log:
        f"{OUT}/logs/figures/{{experiment}}_phase.log",
    wildcard_constraints:
        experiment=PHASE_EXPERIMENTS,
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        code=CODE["plots"],
    script:
        "../scripts/phase_figure.py"
