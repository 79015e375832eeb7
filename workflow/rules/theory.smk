# The paper's theory measured on our own trajectories (dmfcore.theory): Theorem 3's singular
# value rates, one sensing measurement against Equation (11)'s closed form, Theorem 2 and
# Proposition 1 on commuting measurements.
rule theory_check:
    output:
        table=f"{OUT}/tables/theory_{{check}}.parquet",
        points=f"{OUT}/tables/theory_{{check}}_points.parquet",
    log:
        f"{OUT}/logs/theory/{{check}}.log",
    wildcard_constraints:
        check="|".join(ENUMS["theory"]),
    # with the training jobs: a check reads no run (Theorem 3's takes ~40 s), and left for last it
    # would run alone on an otherwise idle machine
    priority: 1
    conda:
        "../../envs/dmf.yaml"
    threads: 1
    resources:
        runtime=30,
        mem_mb=2000,
    params:
        code=CODE["theory"],
    script:
        "../scripts/theory_check.py"


rule theory_figure:
    input:
        table=f"{OUT}/tables/theory_{{check}}.parquet",
        points=f"{OUT}/tables/theory_{{check}}_points.parquet",
    output:
        png=report(
            f"{OUT}/figures/theory_{{check}}.png",
            caption="../report/theory.rst",
            category="theory",
            labels={"check": "{check}"},
        ),
        pdf=f"{OUT}/figures/theory_{{check}}.pdf",
    log:
        f"{OUT}/logs/figures/theory_{{check}}.log",
    wildcard_constraints:
        check="|".join(ENUMS["theory"]),
    # as its check (above): right after it, not left for last
    priority: 1
    conda:
        "../../envs/dmf.yaml"
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        code=CODE["plots"],
    script:
        "../scripts/theory_figure.py"
