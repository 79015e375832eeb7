"""The workflow's planning as a library (dmfcore.plan): in-process, in milliseconds.

The golden job lists (tests/golden/) are Snakemake's own DAGs of the shipped configurations;
tests/test_workflow.py holds Snakemake's DAG equal to them, this file holds the plan equal to
them, so the plan is the DAG."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from dmfcore.cli import main as dmf_main
from dmfcore.plan import ConfigError, make_plan, merge_configs, read_config_files
from dmfcore.plan.make import SET_BATCH_RULES
from dmfcore.plan.registry import DATASET_KINDS, DEVICE_PATTERN, enums, kind_of_dataset
from dmfcore.runspec import RunSpec, TrainConfig, number

REPO = Path(__file__).resolve().parents[1]
GOLDEN = sorted((REPO / "tests/golden").glob("*.json"))
sys.path.insert(0, str(REPO / "tests/golden"))
from job_list import normalized  # noqa: E402

TINY = yaml.safe_load((REPO / ".test/config_tiny/config.yaml").read_text())


def plan_of(config: dict):
    return make_plan(copy.deepcopy(config))


def with_change(change: dict, base: dict = TINY) -> dict:
    config = copy.deepcopy(base)
    config["experiments"]["tiny"].update(change)
    return config


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    # configs name files relative to the repository (as the workflow runs there)
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_the_plan_is_the_golden_job_list(golden):
    expected = json.loads(golden.read_text())
    plan = make_plan(read_config_files(expected["configfiles"] or ["config.yaml"]))
    assert normalized(json.loads(json.dumps(plan.jobs()))) == normalized(expected["jobs"])


def test_a_run_spec_round_trips_through_its_path():
    spec = RunSpec.make(problem="completion", dataset="100x100_rank5", n_obs=2000, seed=3, depth=3, init="gaussian",
                        init_scale=1.0e-3, optimizer="group_rmsprop", lr=0.001, loss_threshold=1e-6,
                        max_iters=1_000_000, device="cpu", dtype="float32")
    assert spec.dir == ("results/runs/completion/100x100_rank5/n2000/seed3/dmf_depth3_gaussian0.001_group_rmsprop_"
                        "lr0.001_stop1e-06_max1000000_cpu_float32")
    fields = re.fullmatch(
        r"results/runs/(?P<problem>\w+)/(?P<dataset>[^/]+)/n(?P<n_obs>\d+)/seed(?P<seed>\d+)/dmf_depth(?P<depth>\d+)_"
        r"(?P<init>[a-z]+)(?P<init_scale>[0-9.e+-]+)_(?P<optimizer>gd|group_rmsprop)_lr(?P<lr>[0-9.e+-]+)_stop"
        r"(?P<loss_threshold>[0-9.e+-]+)_max(?P<max_iters>\d+)_(?P<device>[a-z:0-9-]+)_(?P<dtype>float\d+)",
        spec.dir).groupdict()
    assert RunSpec.from_wildcards(fields) == spec
    assert spec.train_config({"record_every": 50, "top_k": 4}) == TrainConfig(
        depth=3, init_scale=0.001, lr=0.001, seed=3, record_every=50, top_k=4)
    with pytest.raises(ValueError, match="init_scale '1e-3': write it as '0.001'"):
        RunSpec.from_wildcards({**fields, "init_scale": "1e-3"})
    assert number(0.0012345678) == "0.0012345678" and number("1.0e-3") == "0.001"


def _schema_enums(schema: dict) -> dict[str, list]:
    exp = schema["$defs"]["experiment"]["properties"]
    return {
        "problem": exp["problem"]["enum"],
        "init": exp["init"]["enum"],
        "optimizer": exp["optimizer"]["enum"],
        "dtype": exp["dtype"]["enum"],
        "figure": exp["figures"]["items"]["enum"],
        "theory": schema["properties"]["theory"]["items"]["enum"],
        "baseline": exp["baselines"]["items"]["enum"],
        "batch_over": exp["batch_over"]["items"]["enum"],
        "split": schema["$defs"]["dataset"]["properties"]["split"]["enum"],
        "nuclear_norm_solver": schema["properties"]["nuclear_norm_solver"]["enum"],
    }


def test_every_schema_enum_is_its_registry():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    registries = enums()
    assert _schema_enums(schema) == {key: list(registries[key]) for key in _schema_enums(schema)}
    assert schema["$defs"]["device"]["pattern"] == f"^({DEVICE_PATTERN})$"


def test_a_dataset_is_named_by_exactly_one_kind():
    assert kind_of_dataset("100x100_rank5").name == "synthetic"
    assert kind_of_dataset("movielens100k_file_order").name == "ratings"
    for kind in DATASET_KINDS.values():
        assert kind.data_rule and kind.problems
    with pytest.raises(ValueError, match="of no known kind"):
        kind_of_dataset("100x100")


BAD_CONFIGS = [
    # the message itself: the key, the value and the reason, on one line
    ({"colour": "red"}, r"config\.experiments\.tiny: unknown key 'colour' \(known keys: baselines, batch, batch_over, datasets,"),
    ({"depth": [2]}, r"config\.experiments\.tiny: unknown key 'depth' \(did you mean 'depths'\?\)"),
    ({"n_obs": [-5]}, r"config\.experiments\.tiny\.n_obs\[0\]: -5 is less than the minimum of 1"),
    ({"init_scales": [-0.001]},
     r"config\.experiments\.tiny\.init_scales\[0\]: -0.001 is less than or equal to the minimum of 0"),
    ({"n_obs": [500]}, r"experiments\.tiny\.n_obs: 500 entries exceed the 400 entries of a 20x20 matrix"),
    ({"depths": [0]}, r"config\.experiments\.tiny\.depths\[0\]: 0 is less than the minimum of 1"),
    ({"problem": "tensor_completion"},
     r"config\.experiments\.tiny\.problem: 'tensor_completion' is not one of \['completion', 'sensing'\]"),
    ({"optimizer": "adam"}, r"config\.experiments\.tiny\.optimizer: 'adam' is not one of \['gd', 'group_rmsprop'\]"),
    ({"init_scales": {"2": [0.001]}}, r"experiments\.tiny\.init_scales has no entry for depth 3 \(has \['2'\]\)"),
    ({"init_scales": {"2": [0.001], "3": [0.001], "5": [0.01]}},
     r"experiments\.tiny\.init_scales has entries for depth 5, which the experiment does not have"),
    ({"n_obs": [80, 80]}, r"experiments\.tiny\.n_obs: 80 is listed twice"),
    ({"seeds": [0, 1, 0]}, r"experiments\.tiny\.seeds: 0 is listed twice"),
    ({"init_scales": [0.001, 1.0e-3]}, r"experiments\.tiny\.init_scales: 0.001 is listed twice \(as 0.001 and 0.001\)"),
    ({"top_k": 50}, r"experiments\.tiny\.top_k: 50 exceeds the 20 singular values of a 20x20 matrix"),
    ({"record_every": 0, "figures": ["figure3"]},
     r"experiments\.tiny\.figures: figure3 draws recorded trajectories, but record_every is 0"),
    ({"device": {"2": "cpu", "movielens100k": "cuda"}},
     r"experiments\.tiny\.device has entries for rank or dataset movielens100k, which the experiment does not"),
    ({"device": {"2": "gpu"}}, r"config\.experiments\.tiny\.device\.2: 'gpu' does not match '\^\(cpu\|auto"),
    ({"problem": "sensing", "n_obs": [500]},
     r"experiments\.tiny\.n_obs: 500 measurements exceed the 400 entries of a 20x20 matrix"),
    ({"datasets": ["nowhere"]}, r"experiments\.tiny\.datasets: 'nowhere' is not in datasets \(has \[\]\)"),
    ({"batch": True}, r"experiments\.tiny\.batch: batched training runs on torch devices"),
]


@pytest.mark.parametrize("change, message", BAD_CONFIGS)
def test_invalid_config_fails_with_a_message_naming_the_key(change, message):
    with pytest.raises(ConfigError) as err:
        plan_of(with_change(change))
    assert re.search(message, str(err.value)), str(err.value)


def test_experiments_sharing_a_run_must_record_and_batch_it_alike():
    config = copy.deepcopy(TINY)
    config["experiments"]["other"] = {**config["experiments"]["tiny"], "record_every": 100}
    with pytest.raises(ConfigError, match=r"experiments tiny and other share the run \S+ but record it differently "
                                          r"\(tiny: \{'record_every': 500, 'top_k': 10\}, other: \{'record_every': 100"):
        plan_of(config)
    config["experiments"]["other"] = {**config["experiments"]["tiny"], "device": "torch-cpu", "batch": True}
    config["experiments"]["tiny"]["device"] = "torch-cpu"
    with pytest.raises(ConfigError, match=r"share the run \S+ but batch it differently \(tiny: alone, other: "):
        plan_of(config)


def test_a_new_seed_or_n_obs_adds_runs_and_keeps_the_others():
    before = plan_of(TINY)
    runs = {run.dir for run in before.runs["tiny"]}
    for change in ({"seeds": [0, 1, 2]}, {"n_obs": [80, 160, 240]}):
        after = plan_of(with_change(change))
        new = {run.dir for run in after.runs["tiny"]}
        assert runs < new and len(new) == len(runs) * 3 // 2
        # the new runs' jobs only: a seed brings its data, runs and reference rows
        added = {tuple(j["output"]) for j in after.jobs()} - {tuple(j["output"]) for j in before.jobs()}
        assert {rule for rule in (j["rule"] for j in after.jobs() if tuple(j["output"]) in added)} >= {
            "train_dmf", "observations", "min_nuclear_norm", "ground_truth_row"}


def test_batches_keep_their_names_when_an_experiment_is_added():
    gpu = read_config_files(["presets/paper.yaml", "presets/paper_gpu.yaml"])
    names = set(plan_of(gpu).batches)
    assert len(names) == 3 and all(re.fullmatch("train_batch_[0-9a-f]{10}", n) for n in names)
    extra = copy.deepcopy(gpu)
    extra["experiments"] = {"another": {**gpu["experiments"]["sensing_depth"], "shape": [40, 40], "ranks": [2],
                                        "n_obs": [300, 400]}, **gpu["experiments"]}
    plan = plan_of(extra)
    assert names < set(plan.batches) and len(plan.batches) == 4
    # a batch's runs: every run path differs from the key only in batch_over's fields
    for batch in plan.batches.values():
        key = dict(batch.key)
        assert all(all(run.wildcards()[k] == v for k, v in key.items()) for run in batch.runs)


def all_outputs(plan) -> set[str]:
    return {path for job in plan.jobs() for path in job["output"]}


def test_a_grid_batched_over_n_obs_makes_its_data_and_baselines_in_one_job_per_seed():
    config = read_config_files(["config.yaml"])
    plan = plan_of(config)
    phase = plan.phase_experiments()
    assert phase == ["phase_completion", "phase_sensing"]
    for name in phase:  # every set of the phase grids is in a batch, for each of the two rules
        assert all((rule, s.dir) in plan.set_batch_of for s in plan.observation_sets[name] for rule in SET_BATCH_RULES)
    # the experiments that train run by run keep a job per set
    assert not any((rule, s.dir) in plan.set_batch_of for s in plan.observation_sets["completion_depth"]
                   for rule in SET_BATCH_RULES)
    for batch in plan.set_batches.values():  # one (problem, dataset, seed) each, its sets in n_obs order
        assert re.fullmatch(f"{batch.rule}_batch_[0-9a-f]{{10}}", batch.name)
        assert len({(s.problem, s.dataset, s.seed) for s in batch.sets}) == 1
        assert [s.n_obs for s in batch.sets] == sorted({s.n_obs for s in batch.sets}) and len(batch.sets) == 6
        assert len(batch.outputs()) == len(batch.sets) * (1 if batch.rule == "observations" else 2)
    counts = plan.job_counts()
    assert counts["observations_batch"] == counts["min_nuclear_norm_batch"] == 10
    # the same files, by 100 fewer jobs: what the plan makes when nothing is batched
    unbatched = copy.deepcopy(config)
    for name in phase:
        unbatched["experiments"][name]["batch"] = False
    alone = plan_of(unbatched)
    assert not alone.set_batches and all_outputs(alone) == all_outputs(plan)

    def data_and_baselines(p):
        return [job for job in p.jobs() if not job["rule"].startswith(("train_dmf", "train_batch"))]

    assert len(data_and_baselines(alone)) - len(data_and_baselines(plan)) == 100
    # a set shared with an experiment that does not batch is made once, by the batch
    config["experiments"]["other"] = {**{k: v for k, v in config["experiments"]["phase_completion"].items()
                                         if k != "phase"}, "batch": False, "depths": [5], "n_obs": [175, 600]}
    shared = plan_of(config)
    jobs = shared.jobs()
    makers = {path: job["rule"] for job in jobs for path in job["output"]}
    assert makers["results/data/30x30_rank2/seed0/completion_n175.npz"].startswith("observations_batch_")
    assert makers["results/data/30x30_rank2/seed0/completion_n600.npz"] == "observations"
    assert makers["results/runs/completion/30x30_rank2/n600/seed0/nuclear_norm/metrics.json"] == "min_nuclear_norm"
    assert sum(len(job["output"]) for job in jobs) == len(makers)  # no file made by two jobs
    assert set(shared.set_batches) == set(plan.set_batches)  # names kept when an experiment is added


def test_the_paper_preset_on_a_gpu_is_three_batches_of_200_runs_of_every_depth():
    for overlays in (["presets/paper_gpu.yaml"], ["presets/paper_gpu.yaml", "presets/paper_rehearsal_cpu.yaml"]):
        plan = plan_of(read_config_files(["presets/paper.yaml", *overlays]))
        assert [len(b.runs) for b in plan.batches.values()] == [200, 200, 200]
        assert all({run.depth for run in b.runs} == {2, 3, 4} for b in plan.batches.values())
        # every d = 100 run is in a batch; Razin & Cohen's small matrices train alone on the CPU
        alone = [run for runs in plan.runs.values() for run in runs if run.dir not in plan.batch_of]
        assert {run.dataset.endswith("_fixed") and run.device == "cpu" for run in alone} == {True}
        assert plan.job_counts()["train_dmf"] == len(alone) == 155


def test_device_auto_is_decided_once_and_per_key_devices_apply():
    import torch

    plan = plan_of(with_change({"device": "auto"}))
    assert {run.device for run in plan.runs["tiny"]} == {"cuda" if torch.cuda.is_available() else "cpu"}
    config = with_change({"ranks": [2, 3], "n_obs": [80], "device": {"2": "cpu", "3": "torch-cpu"}})
    devices = {(run.dataset, run.device) for run in plan_of(config).runs["tiny"]}
    assert devices == {("20x20_rank2", "cpu"), ("20x20_rank3", "torch-cpu")}


def test_real_data_left_out_when_unset_planned_when_present_and_an_error_when_mistyped(tmp_path):
    config = read_config_files([".test/config_ratings/config.yaml"])
    plan = plan_of(config)
    assert plan.missing["dyn"] == {} and "toy_file_order" in {run.dataset for run in plan.runs["dyn"]}
    counts = plan.job_counts()
    assert counts["ratings_split"] == 1 and counts["predictor_row"] == 2 and "download_ratings" not in counts
    # a path the user set that is not there is a typo, not a choice: an error naming the path
    absent = tmp_path / "absent.data"
    config["datasets"]["toy"]["ratings"] = str(absent)
    with pytest.raises(ConfigError, match=rf"config: datasets\.toy\.ratings: {re.escape(str(absent))} not found"):
        plan_of(config)
    assert dmf_main(["plan", "--configfile", str(write_yaml(tmp_path / "typo.yaml", config))]) == 2
    # unset: left out with a notice, the rest planned
    config["datasets"]["toy"]["ratings"] = None
    plan = plan_of(config)
    assert plan.missing["dyn"] == {"toy": "no data: set datasets.toy.ratings to your copy of u.data, or "
                                          "datasets.toy.download: true to fetch it"}
    assert {run.dataset for run in plan.runs["dyn"]} == {"20x20_rank2"}
    assert any("dataset toy left out (no data" in w for w in plan.warnings)
    config["datasets"]["toy"] = {"ratings": None, "download": True, "shape": [30, 40]}
    assert plan_of(config).job_counts()["download_ratings"] == 1


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_merging_config_files_is_key_by_key():
    base = {"name": "a", "experiments": {"x": {"depths": [2], "seeds": [0]}, "y": {"depths": [3]}}}
    merged = merge_configs(base, {"experiments": {"x": {"seeds": [1, 2]}}, "theory": []})
    assert merged == {"name": "a", "theory": [], "experiments": {"x": {"depths": [2], "seeds": [1, 2]},
                                                                  "y": {"depths": [3]}}}
    assert base["experiments"]["x"]["seeds"] == [0]


def test_dmf_plan_prints_the_job_counts(capsys):
    assert dmf_main(["plan", "--configfile", "presets/paper.yaml", "presets/paper_gpu.yaml", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    plan = make_plan(read_config_files(["presets/paper.yaml", "presets/paper_gpu.yaml"]))
    assert summary["jobs"] == plan.job_counts() and summary["total_jobs"] == len(plan.jobs()) == 429
    assert summary["runs"] == 755 and summary["batched_runs"] == 600
    assert dmf_main(["plan", "--configfile", ".test/config_tiny/config.yaml"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"train_dmf\s+12\n", text) and re.search(r"total\s+29", text)
    assert dmf_main(["plan", "--configfile", "nowhere.yaml"]) == 2
    assert "config file nowhere.yaml not found" in capsys.readouterr().err


def movielens_on_the_cpu(tmp_path: Path) -> dict:
    """config.yaml with MovieLens configured (a stand-in file: planning only checks it is there)
    and its runs on the CPU."""
    config = read_config_files(["config.yaml"])
    u_data = tmp_path / "u.data"
    u_data.write_text("1\t1\t5\t0\n")
    config["datasets"]["movielens100k"]["ratings"] = str(u_data)
    config["experiments"]["dynamics"]["device"] = {"5": "cpu", "movielens100k": "cpu"}
    return config


def _movielens_runs(plan):
    return [run for run in plan.runs["dynamics"] if run.dataset == "movielens100k_file_order"]


def test_the_cpu_hours_warning_counts_the_minimum_nuclear_norm_job(tmp_path):
    plan = plan_of(movielens_on_the_cpu(tmp_path))
    (warning,) = [w for w in plan.warnings if "CPU-hours" in w]
    runs = sum(plan.run_seconds(run) for run in _movielens_runs(plan))
    (obs,) = [o for o in plan.observation_sets["dynamics"] if o.dataset == "movielens100k_file_order"]
    nuclear_norm = plan.nuclear_norm_seconds(obs.problem, obs.dataset, obs.n_obs)
    # measured: 348 s on one core for the interior-point method at m = 10,000 (auto's choice there)
    assert 300 <= nuclear_norm <= 600
    # the first-order solver at its cap: 80 minutes for 20,000 iterations at 943 x 1682
    config = movielens_on_the_cpu(tmp_path)
    config["nuclear_norm_solver"] = "admm-svt"
    assert 60 * 60 <= plan_of(config).nuclear_norm_seconds(obs.problem, obs.dataset, obs.n_obs) <= 120 * 60
    total = f"{(runs + nuclear_norm) / 3600:.0f}"
    assert f"up to {total} CPU-hours" in warning and "1 minimum nuclear norm" in warning, warning
    assert "200000 steps each" in warning and "they stop earlier" not in warning
    # runs on a GPU: the minimum nuclear norm job still runs on the CPU, and the warning says so
    config = movielens_on_the_cpu(tmp_path)
    config["experiments"]["dynamics"]["device"] = {"5": "cpu", "movielens100k": "cuda"}
    (warning,) = [w for w in plan_of(config).warnings if "CPU-hours" in w]
    assert "1 minimum nuclear norm" in warning and "runs on real data" not in warning


def _slurm_runtime(rule: str, wildcards: dict, own) -> float:
    """A job's SLURM time limit in minutes: profiles/slurm's set-resources expression for its
    rule (evaluated as Snakemake does, with the job's wildcards), else the rule's own."""
    from types import SimpleNamespace

    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    value = (profile.get("set-resources", {}).get(rule) or {}).get("runtime")
    if value is None:
        return own
    return eval(str(value), {"wildcards": SimpleNamespace(**wildcards)})  # noqa: S307


def test_slurm_time_limits_follow_the_estimates(tmp_path):
    """Real-data jobs on the CPU take hours: the SLURM profile and the rules must not kill them."""
    plan = plan_of(movielens_on_the_cpu(tmp_path))
    for run in _movielens_runs(plan):
        wildcards = {k: str(v) for k, v in run.wildcards().items()}
        limit = _slurm_runtime("train_dmf", wildcards, plan.train_runtime(wildcards))
        assert limit * 60 >= 1.2 * plan.run_seconds(run), (run.depth, limit)
        assert not plan.bundled(wildcards)  # hours: not in a bundle of seconds-long runs
    (obs,) = [o for o in plan.observation_sets["dynamics"] if o.dataset == "movielens100k_file_order"]
    wildcards = {k: str(v) for k, v in obs.fields().items()}
    limit = _slurm_runtime("min_nuclear_norm", wildcards, plan.nuclear_norm_runtime(wildcards))
    assert limit * 60 >= 1.2 * plan.nuclear_norm_seconds(obs.problem, obs.dataset, obs.n_obs)
    # the interior-point method's m x m Schur complement: 2.3 GB measured at m = 10,000
    assert plan.nuclear_norm_mem_mb(obs.problem, obs.dataset, obs.n_obs) >= 2300
    # synthetic completion runs on the CPU keep their short limits and their bundles
    run = next(run for run in plan.runs["completion_depth"])
    wildcards = {k: str(v) for k, v in run.wildcards().items()}
    assert _slurm_runtime("train_dmf", wildcards, plan.train_runtime(wildcards)) == 5 and plan.bundled(wildcards)


FIXED = {"kind": "fixed", "shape": [2, 2], "observed": [[1, 2, 1.0], [2, 1, 1.0], [2, 2, 0.0]]}
NORMS = {"problem": "completion", "datasets": ["rc"], "n_obs": [3], "depths": [1, 3], "init": "normal_posdet",
         "init_scales": [0.008], "optimizer": "gd", "lrs": [0.005], "seeds": [0, 1], "baselines": ["nuclear_norm"],
         "record_every": 100, "top_k": 2, "figures": ["norms"]}


def test_a_fixed_matrix_is_a_dataset_of_its_own_kind():
    plan = plan_of({"datasets": {"rc": FIXED}, "experiments": {"norms": NORMS}})
    assert {run.dataset for run in plan.runs["norms"]} == {"rc_fixed"}
    assert plan.job_counts() == {"aggregate": 1, "figure": 1, "fixed_observations": 2, "min_nuclear_norm": 2,
                                 "train_dmf": 4}
    fixed = [j for j in plan.jobs() if j["rule"] == "fixed_observations"][0]
    assert fixed["params"] == {"fixed": {"shape": [2, 2], "observed": FIXED["observed"]}}
    assert plan.warnings == []  # no CPU-hours warning: a fixed matrix is not real data
    # one more seed: that seed's runs, its observation set and baseline, the table and the figure
    more = plan_of({"datasets": {"rc": FIXED}, "experiments": {"norms": {**NORMS, "seeds": [0, 1, 2]}}})
    added = {tuple(j["output"]) for j in more.jobs()} - {tuple(j["output"]) for j in plan.jobs()}
    assert all("/seed2/" in path for outputs in added for path in outputs if "/runs/" in path or "/data/" in path)
    assert sum(1 for outputs in added if outputs[0].endswith("matrix.npz") and "dmf_depth" in outputs[0]) == 2


@pytest.mark.parametrize("dataset, n_obs, message", [
    ({**FIXED, "observed": [[1, 2, 1.0], [3, 1, 1.0]]}, [2], r"datasets\.rc\.observed: observed entries must lie in"),
    ({**FIXED, "observed": [[1, 2, 1.0], [1, 2, 0.5]]}, [2], r"datasets\.rc\.observed: an entry is observed twice"),
    ({k: v for k, v in FIXED.items() if k != "observed"}, [3], r"datasets\.rc: a fixed matrix lists its observed"),
    ({**FIXED, "split": "random"}, [3], r"datasets\.rc: split belong to kind ratings"),
    (FIXED, [4], r"experiments\.norms\.n_obs: dataset rc observes 3 entries .* so its n_obs is \[3\], not \[4\]"),
])
def test_a_bad_fixed_matrix_is_refused_naming_the_key(dataset, n_obs, message):
    with pytest.raises(ConfigError, match=message):
        plan_of({"datasets": {"rc": dataset}, "experiments": {"norms": {**NORMS, "n_obs": n_obs}}})


def test_a_phase_diagram_takes_one_init_scale_and_learning_rate_per_depth():
    config = with_change({"phase": {}, "figures": []})  # the tiny config has two depth-2 init scales
    with pytest.raises(ConfigError, match=r"experiments\.tiny\.phase: a phase diagram has one method per depth, "
                                          r"so one value of init_scales per depth; depth 2 has \[0\.001, 0\.0005\]"):
        plan_of(config)
    plan_of(with_change({"phase": {}, "figures": [], "init_scales": [0.001]}))
