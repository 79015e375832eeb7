#!/usr/bin/env bash
# Snakemake runs this inside the new conda environment, from the workflow's working directory
# (the repository root): install dmfcore from this checkout (editable: code edits take effect).
set -euo pipefail
python -m pip install --no-deps --editable .
