from dmfcore.threads import limit_blas_threads

limit_blas_threads(snakemake.threads)

from dataclasses import replace  # noqa: E402

from dmfcore.gpus import job_device  # noqa: E402
from dmfcore.runs import run_dmf  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402
from dmfcore.codediff import append_module_hashes  # noqa: E402
from dmfcore.records import RunOutputs, logged  # noqa: E402
from dmfcore.runspec import RunSpec  # noqa: E402

config = RunSpec.from_wildcards(dict(snakemake.wildcards.items())).train_config(
    snakemake.params.settings
)
out = snakemake.output
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "runs")
    # several GPUs: this job's is the one with the fewest jobs, held while it trains
    device, gpu_claim = job_device(config.device)
    run_dmf(
        # real data have no ground truth (their observation set holds a test set)
        snakemake.input.get("ground_truth"),
        snakemake.input.observations,
        replace(config, device=device),
        RunOutputs(out.matrix, out.metrics, snakemake.log[0], out.trajectory),
    )

# which modules computed the result, for `dmf why` (dmfcore.codediff)
append_module_hashes(snakemake.log[0], "runs")
