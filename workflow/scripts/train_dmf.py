from dmfcore.threads import limit_blas_threads

limit_blas_threads(snakemake.threads)

from dmfcore.experiment import RunOutputs, TrainConfig, logged, run_dmf  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402

w = snakemake.wildcards
settings = snakemake.params.settings
config = TrainConfig(
    depth=int(w.depth),
    init=w.init,
    init_scale=float(w.init_scale),
    lr=float(w.lr),
    optimizer=w.optimizer,
    seed=int(w.seed),
    max_iters=int(w.max_iters),
    loss_threshold=float(w.loss_threshold),
    record_every=settings["record_every"],
    top_k=settings["top_k"],
    device=w.device,
    dtype=w.dtype,
)
out = snakemake.output
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code)
    run_dmf(
        # real data have no ground truth (their observation set holds a test set)
        snakemake.input.get("ground_truth"),
        snakemake.input.observations,
        config,
        RunOutputs(out.matrix, out.metrics, snakemake.log[0], out.trajectory),
    )
