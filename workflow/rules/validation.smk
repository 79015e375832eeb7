"""The config checked against its schema, one short line per problem (before any job runs)."""

import difflib
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from snakemake.exceptions import WorkflowError


def config_location(path):
    """experiments.tiny.n_obs[0] for the path ('experiments', 'tiny', 'n_obs', 0)."""
    text = "config"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def schema_problem(error):
    """One line for a schema violation: where, and why (for an unknown key, the closest)."""
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        lines = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hint = (
                f" (did you mean '{close[0]}'?)"
                if close
                else f" (known keys: {', '.join(known)})"
            )
            lines.append(
                f"{config_location(error.absolute_path)}: unknown key '{key}'{hint}"
            )
        return "\n".join(lines)
    if error.context:
        # oneOf (a list, or a mapping of lists): explain the branch of the value's own type
        same_type = [
            e
            for e in error.context
            if not (e.validator == "type" and not e.relative_path)
        ]
        error = best_match(same_type or error.context)
    return f"{config_location(error.absolute_path)}: {error.message}"


def check_config(config, schema_path):
    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = sorted(
        Draft202012Validator(schema).iter_errors(config),
        key=lambda e: list(map(str, e.path)),
    )
    if errors:
        raise WorkflowError(
            "invalid config:\n" + "\n".join(schema_problem(e) for e in errors)
        )
