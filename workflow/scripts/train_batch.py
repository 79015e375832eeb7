from dmfcore.threads import limit_blas_threads

limit_blas_threads(snakemake.threads)

from dmfcore.experiment import (
    RunOutputs,
    TrainConfig,
    logged,
    run_dmf_batch,
)  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402

key = snakemake.params.key
settings = snakemake.params.settings
configs = [
    TrainConfig(
        depth=int(key["depth"]),
        init=key["init"],
        init_scale=float(init_scale),
        lr=float(lr),
        optimizer=key["optimizer"],
        seed=int(key["seed"]),
        max_iters=int(key["max_iters"]),
        loss_threshold=float(key["loss_threshold"]),
        record_every=settings["record_every"],
        top_k=settings["top_k"],
        device=key["device"],
        dtype=key["dtype"],
    )
    for init_scale, lr in snakemake.params.members
]
files = list(snakemake.output)
outputs = [
    RunOutputs(files[3 * k], files[3 * k + 1], log, files[3 * k + 2])
    for k, log in enumerate(snakemake.log)
]
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code)
    run_dmf_batch(
        snakemake.input.get("ground_truth"),
        snakemake.input.observations,
        configs,
        outputs,
    )
