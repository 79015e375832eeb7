from dmfcore.threads import limit_blas_threads

limit_blas_threads(snakemake.threads)

from dmfcore.experiment import (
    RunOutputs,
    TrainConfig,
    logged,
    run_dmf_batch,
)  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402

members = snakemake.params.members
settings = snakemake.params.settings
configs = [
    TrainConfig(
        depth=int(run["depth"]),
        init=run["init"],
        init_scale=float(run["init_scale"]),
        lr=float(run["lr"]),
        optimizer=run["optimizer"],
        seed=int(run["seed"]),
        max_iters=int(run["max_iters"]),
        loss_threshold=float(run["loss_threshold"]),
        record_every=settings["record_every"],
        top_k=settings["top_k"],
        device=run["device"],
        dtype=run["dtype"],
    )
    for run in members
]
files = list(snakemake.output)
outputs = [
    RunOutputs(files[3 * k], files[3 * k + 1], log, files[3 * k + 2])
    for k, log in enumerate(snakemake.log)
]
data = [(run.get("ground_truth"), run["observations"]) for run in members]
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code)
    run_dmf_batch(data, configs, outputs)
