rule aggregate:
    input:
        metrics=metrics_files,
        trajectories=trajectory_files,
    output:
        table=f"{OUT}/tables/{{experiment}}.parquet",
        trajectories=f"{OUT}/tables/{{experiment}}_trajectories.parquet",
    log:
        f"{OUT}/logs/aggregate/{{experiment}}.log",
    # the experiments' names only: the theory tables (theory.smk) share the pattern
    wildcard_constraints:
        experiment="|".join(re.escape(name) for name in PLAN.experiments),
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        # every row must come from today's code of its part, every trajectory from this recording
        code=CODE["tables"],
        producers={part: CODE[part] for part in ("runs", "baselines", "real_data")},
        recording=recording,
    script:
        "../scripts/aggregate.py"
