"""The figures say what they draw: checked on the drawn artists and legend entries, not pixels."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from dmfcore import plots


def _table(errors: dict, nn_errors: dict, rank: int = 5, threshold: float = 1e-6) -> pd.DataFrame:
    """A results table: ``errors[(depth, n_obs)]`` and ``nn_errors[n_obs]`` list one value per seed."""
    rows = []
    base = {"experiment": "e", "problem": "completion", "dataset": f"20x20_rank{rank}", "d1": 20, "d2": 20,
            "rank": rank}
    for (depth, n_obs), values in errors.items():
        for seed, value in enumerate(values):
            rows.append({**base, "n_obs": n_obs, "method": "dmf", "depth": depth, "init_scale": 1e-3, "lr": 1e-3,
                         "seed": seed, "recon_error": value, "nuclear_norm": 10.0 + seed, "effective_rank": 5.0 + seed,
                         "loss_threshold": threshold})
    for n_obs, values in nn_errors.items():
        for seed, value in enumerate(values):
            rows.append({**base, "n_obs": n_obs, "method": "nuclear_norm", "seed": seed, "recon_error": value,
                         "nuclear_norm": 9.0, "effective_rank": 6.0})
            rows.append({**base, "n_obs": n_obs, "method": "ground_truth", "seed": seed, "recon_error": 0.0,
                         "nuclear_norm": 9.5, "effective_rank": 4.9})
    return pd.DataFrame(rows)


def _line(ax, label):
    lines = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(lines) == 1, [line.get_label() for line in ax.get_lines()]
    return lines[0]


def _band(ax, line, x):
    """The y extent at ``x`` of the band drawn in ``line``'s colour."""
    for coll in ax.collections:
        if isinstance(coll, PolyCollection) and np.allclose(coll.get_facecolor()[0][:3],
                                                            matplotlib.colors.to_rgb(line.get_color())):
            vertices = np.concatenate([p.vertices for p in coll.get_paths()])
            ys = vertices[vertices[:, 0] == x, 1]
            return ys.min(), ys.max()
    raise AssertionError(f"no band for {line.get_label()}")


def _legend_texts(fig):
    assert len(fig.legends) == 1
    legend = fig.legends[0]
    return legend.get_title().get_text(), [t.get_text() for t in legend.get_texts()]


@pytest.fixture
def table():
    return _table(
        errors={(2, 100): [0.1, 0.2], (2, 200): [1e-2, 3e-2], (3, 100): [1e-1, 1e-4], (3, 200): [2e-5, 3e-5]},
        nn_errors={100: [0.3, 0.2], 200: [6e-17, 1e-16]},
    )


def test_figure1_legend_says_what_lines_and_bands_are_and_how_many_seeds(table):
    fig = plots.figure1(table)
    title, labels = _legend_texts(fig)
    assert "2 seeds" in title and "min to max" in title and "geometric" in title
    assert labels[:3] == ["depth 2", "depth 3", "min nuclear norm"]
    three = plots.figure1(pd.concat([table, table[table["seed"] == 0].assign(seed=2)]))
    assert "3 seeds" in _legend_texts(three)[0]
    # two ranks observed at the same n_obs are two points of 2 seeds each, not one of 4
    ranks = plots.figure1(pd.concat([table, table.assign(rank=3, dataset="20x20_rank3")]))
    assert "over 2 seeds" in _legend_texts(ranks)[0]


def test_log_axis_band_spans_the_seeds_not_a_std_running_to_zero(table):
    ax = plots.figure1(table).axes[0]
    depth3 = _line(ax, "depth 3")
    # at 100 entries the seeds give 1e-1 and 1e-4: the line is their geometric mean, the band
    # their range (mean - std would be negative, drawn at mean / 1000 = 5e-5 before)
    assert depth3.get_ydata()[0] == pytest.approx(np.sqrt(1e-1 * 1e-4))
    low, high = _band(ax, depth3, 100)
    assert low == pytest.approx(1e-4) and high == pytest.approx(1e-1)


def test_error_axis_floors_an_exact_reference_and_marks_the_stopping_threshold(table):
    ax = plots.figure1(table).axes[0]
    # the smallest run error is 2e-5 and the threshold 1e-6: the axis stops at 1e-7, not 1e-16
    assert ax.get_ylim()[0] == pytest.approx(1e-7)
    stop = _line(ax, "training stops: train loss <= 1e-06")
    assert set(stop.get_ydata()) == {1e-6}
    nn = _line(ax, "min nuclear norm")
    assert nn.get_ydata()[-1] == pytest.approx(1e-7)  # drawn on the floor...
    annotations = [child.get_text() for child in ax.texts]
    assert "6e-17, 1e-16" in annotations, annotations  # ...with the value each seed reached
    # without a recorded threshold (older tables) there is no threshold line
    assert not [line for line in plots.figure1(table.drop(columns="loss_threshold")).axes[0].get_lines()
                if line.get_label().startswith("training stops")]


def test_figure2_legend_has_the_ground_truth_and_the_references(table):
    fig = plots.figure2(table)
    title, labels = _legend_texts(fig)
    assert "ground truth" in labels and "min nuclear norm" in labels and "depth 3" in labels
    assert "2 seeds" in title
    nuclear_norm_panel = fig.axes[1]
    assert set(_line(nuclear_norm_panel, "ground truth").get_ydata()) == {9.5}
    # linear axes keep the plain mean, with the min-max band
    depth2 = _line(nuclear_norm_panel, "depth 2")
    assert depth2.get_ydata()[0] == pytest.approx(10.5)
    assert _band(nuclear_norm_panel, depth2, 100) == pytest.approx((10.0, 11.0))


def test_a_floor_triangle_says_what_each_seed_reached_not_their_geometric_mean(table):
    # one seed exact (1e-16), one not (1.6e-7, above the floor): their geometric mean, 4e-12,
    # is a value neither reached
    mixed = table[~((table["method"] == "nuclear_norm") & (table["n_obs"] == 200))]
    rows = table[(table["method"] == "nuclear_norm") & (table["n_obs"] == 200)].assign(recon_error=[1e-16, 1.6e-7])
    ax = plots.figure1(pd.concat([mixed, rows])).axes[0]
    annotations = [child.get_text() for child in ax.texts]
    assert annotations == ["1e-16, 2e-07"], annotations
    assert not any("4e-12" in text for text in annotations)


def _dynamics(final_step: int = 179_800, settled: int = 30_000):
    """A figure3 table and trajectories: depths 2 and 3, singular values settled by ``settled``,
    recorded every 100 steps up to ``final_step``."""
    steps = np.arange(0, final_step + 1, 100)
    base = {"experiment": "e", "problem": "completion", "dataset": "20x20_rank2", "d1": 20, "d2": 20, "rank": 2,
            "n_obs": 100, "seed": 0, "init_scale": 1e-3, "lr": 0.1}
    table = pd.DataFrame([{**base, "method": "dmf", "depth": d, "recon_error": 1e-5, "iterations": final_step}
                          for d in (2, 3)])
    grow = np.minimum(steps / settled, 1.0)
    traj = pd.concat([pd.DataFrame({**base, "depth": d, "step": steps, "sigma_1": 1e-3 + 10 * grow,
                                    "sigma_2": 1e-3 + 5 * grow**2, "diag_mean": 1.0 + grow,
                                    "diag_std": 0.1, "offdiag_mean": 1e-2, "offdiag_std": 1e-3})
                      for d in (2, 3)])
    return table, traj


def test_figure3_says_where_a_cropped_panel_ends_and_where_the_run_did():
    table, traj = _dynamics()
    fig = plots.figure3(table, traj)
    for ax in fig.axes[:2]:
        assert ax.get_xlim()[1] < 100_000  # cropped a little after the singular values settled...
        title = ax.get_title()
        assert "179,800" in title and "shown to step" in title, title  # ...and the panel says so
    # a run shown to its end says nothing more
    table, traj = _dynamics(final_step=20_000, settled=19_000)
    assert "shown to step" not in plots.figure3(table, traj).axes[0].get_title()
