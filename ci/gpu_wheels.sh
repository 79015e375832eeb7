#!/usr/bin/env bash
# Wheels of snakemake and cvxpy for the GPU machine's Python 3.12 (it has torch, numpy, pandas,
# pyarrow, scipy, pytest, jinja2, pyyaml, ... but not these), into .whl/ for
# `run(command="bash ci/gpu_session.sh", carry=[".gpu_data", ".whl"])`. Only what that machine
# lacks, about 28 MB (pulp, sparsediffpy and highspy are left out: nothing here imports them;
# scs 3.2.7, 10 MB, instead of 3.3.1, 43 MB). connection_pool has no wheel: built here.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
rm -rf .whl && mkdir .whl
platforms=()
for p in manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
done
for spec in argparse-dataclass==2.0.0 conda-inject==1.3.2 configargparse==1.9.0 docutils==0.22.4 dpath==2.2.0 \
    fastjsonschema==2.22.3 gitdb==4.0.12 gitpython==3.2.1 humanfriendly==10.0 immutables==0.21 jsonschema==4.26.0 \
    jsonschema-specifications==2025.9.1 jupyter-core==5.9.1 nbformat==5.11.1 platformdirs==4.14.8 referencing==0.37.0 \
    rpds-py==2026.9.1 smart-open==7.7.1 smmap==5.0.3 snakemake==9.27.1 snakemake-interface-common==1.23.0 \
    snakemake-interface-executor-plugins==9.4.0 snakemake-interface-logger-plugins==2.1.0 \
    snakemake-interface-report-plugins==1.3.0 snakemake-interface-scheduler-plugins==2.0.2 \
    snakemake-interface-storage-plugins==4.4.1 throttler==1.2.3 traitlets==5.16.1 yte==1.9.4 tenacity==9.2.1 \
    sqlmodel==0.0.37 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    sqlalchemy==2.0.58 greenlet==3.5.6 cvxpy==1.9.3 clarabel==0.11.1 osqp==1.1.3 scs==3.2.7 qdldl==0.1.9.post1 \
    cffi==2.1.1 pycparser==3.12; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl "$spec"
done
python3 -m pip wheel -q --no-deps -w .whl connection-pool==0.0.3
du -sh .whl
