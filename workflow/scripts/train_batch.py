from dmfcore.threads import limit_blas_threads

limit_blas_threads(snakemake.threads)

from dataclasses import replace  # noqa: E402

from dmfcore.gpus import job_device  # noqa: E402
from dmfcore.runs import run_dmf_batch  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402
from dmfcore.codediff import append_module_hashes  # noqa: E402
from dmfcore.records import RunOutputs, logged  # noqa: E402
from dmfcore.runspec import RunSpec  # noqa: E402

members = snakemake.params.members
configs = [
    RunSpec.from_wildcards(run).train_config(snakemake.params.settings) for run in members
]
files = list(snakemake.output)
outputs = [
    RunOutputs(files[3 * k], files[3 * k + 1], log, files[3 * k + 2])
    for k, log in enumerate(snakemake.log)
]
data = [(run.get("ground_truth"), run["observations"]) for run in members]
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "runs")
    # several GPUs: this job's is the one with the fewest jobs, held while it trains
    device, gpu_claim = job_device(configs[0].device)
    run_dmf_batch(data, [replace(config, device=device) for config in configs], outputs)

# which modules computed the results, for `dmf why` (dmfcore.codediff)
for log in snakemake.log:
    append_module_hashes(log, "runs")
