from dmfcore.threads import limit_blas_threads

limit_blas_threads(1)

from dmfcore.real_data import generate_ratings_split  # noqa: E402
from dmfcore.records import logged  # noqa: E402
from dmfcore.provenance import check_code_fingerprint  # noqa: E402

w = snakemake.wildcards
spec = snakemake.params.dataset
with logged(snakemake.log[0]):
    check_code_fingerprint(snakemake.params.code, "real_data")
    generate_ratings_split(
        snakemake.input.ratings,
        snakemake.output[0],
        n_train=int(w.n_obs),
        split=spec["split"],
        seed=int(w.seed),
        shape=tuple(spec["shape"]),
        dataset=w.dataset,
    )
