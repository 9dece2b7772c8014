"""Issue 19, items 5 and 6: the study figures draw the tables' interval (the 95% CI, clipped),
short legend labels, no colour twice, the target in the legend, and captions that match."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.studies.plots import (Line, axis_curves_png, mean_curve, pareto_plot, pruned_epochs, short_label,
                                 value_colours)
from tests.helpers import per_optimizer_lr_study


def curves(accuracies_by_seed: dict[int, list[float]], active: float | None = None) -> pd.DataFrame:
    rows = [{"point": "p", "seed": seed, "epoch": e + 1, "time_s": float(e + 1), "accuracy": a, "loss": 1.0 / (e + 1),
             "active_fraction": active} for seed, accs in accuracies_by_seed.items() for e, a in enumerate(accs)]
    return pd.DataFrame(rows)


def test_the_curve_band_is_the_clipped_95_ci_and_needs_three_seeds():
    three = mean_curve(curves({0: [0.99, 0.999], 1: [0.95, 0.999], 2: [0.999, 0.998]}))
    assert (three["ci_high"] <= 1.0).all() and three.loc[0, "ci_low"] < three.loc[0, "mean"]
    two = mean_curve(curves({0: [0.9, 0.95], 1: [0.8, 0.96]}))
    assert two["ci_low"].isna().all() and two["mean"].tolist() == pytest.approx([0.85, 0.955])
    assert two["loss"].tolist() == pytest.approx([1.0, 0.5])


def test_legend_labels_are_short_and_colours_never_repeat():
    assert short_label({"method": "magnitude", "target": 0.05, "prune_epochs": [4]}) == "magnitude 5%"
    assert short_label({"method": "l1", "l1": 3e-4, "target": 0.005}) == "l1 0.0003, 0.5%"
    assert short_label({"method": "magnitude", "threshold": 1e-3}) == "magnitude |w| < 0.001"
    assert short_label({"method": "none"}) == "dense" and short_label(0.1) == "0.1"
    for n in (3, 15, 30):
        colours = value_colours([f"v{i}" for i in range(n)], False)
        assert len(set(colours.values())) == n


def test_the_pareto_caption_names_a_baseline_only_when_one_is_drawn():
    sparse = pd.DataFrame([{"sparsity_series": "l1, threshold", "active_params": 3000, "mean_accuracy": 0.8,
                            "ci_low": None, "ci_high": None}])
    dense = pd.DataFrame([{"mean_accuracy": 0.85, "ci_low": 0.84, "ci_high": 0.86}])
    without = pareto_plot(sparse, dense.iloc[:0], set(), 0.8).caption
    assert "no full-width dense point in this study, so no baseline line" in without
    assert "the full-width dense network as a solid line" in pareto_plot(sparse, dense, set(), 0.8).caption
    assert "narrowed" not in without  # no narrowed dense series here, so the caption does not speak of one


def test_a_sparse_curve_figure_draws_the_traces_and_the_target_in_the_legend(monkeypatch):
    drawn = []
    monkeypatch.setattr("bench.studies.plots.figure_png", lambda figure: drawn.append(figure) or b"png")
    lines = [Line("magnitude 5%", "#1f77b4", mean_curve(curves({0: [0.7, 0.8], 1: [0.72, 0.82], 2: [0.7, 0.81]},
                                                                 active=0.05)), 3)]
    axis_curves_png("recipe.sparsity", lines, "every value", None, 0.8)
    (figure,) = drawn
    labels = [a.get_ylabel() for a in figure.axes]
    assert labels == ["test top-1 (%)", "test top-1 (%)", "training loss", "active fraction (%)"]
    legend = figure.axes[1].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["magnitude 5% (3 seeds)", "target 80.0%"]
    assert legend.get_bbox_to_anchor().x0 > figure.axes[1].get_window_extent().x1 - 1  # outside the axes
    (ring,) = figure.axes[2].collections  # the loss at the pruning (before epoch 1's end: 5% active from the first)
    assert ring.get_offsets().tolist() == [[1.0, 1.0]]


def test_the_pruning_epochs_are_where_the_active_fraction_falls():
    frame = pd.DataFrame({"epoch": [4, 1, 2, 3, 5], "active_fraction": [0.05, 1.0, 1.0, 0.5, 0.05]})
    assert pruned_epochs(frame) == [3, 4]  # gradual: 50% after epoch 3, 5% after epoch 4
    assert pruned_epochs(pd.DataFrame({"epoch": [1, 2], "active_fraction": [None, None]})) == []
    assert pruned_epochs(pd.DataFrame({"epoch": [1, 2], "active_fraction": [1.0, 1.0]})) == []


LR_STUDY = per_optimizer_lr_study("lr-test", "fashion-mnist-mlp", [0, 1, 2], 5000,
                                  [0.1, 0.03, 0.01], [0.01, 0.003, 0.001])


def lr_frames(rows: list[tuple[str, float, float, float]]):
    """Points as figures.point_rows writes them: (optimizer, lr, test mean, validation mean), 3 seeds."""
    from bench.studies.figures import StudyFrames
    from bench.studies.study import value_label

    points = pd.DataFrame([{"point": f"{o}-{lr}", "complete": 3, "axis:recipe.optimizer": o,
                            "axis:recipe.lr": value_label(lr), "mean_accuracy": test, "ci_low": test - 0.01,
                            "ci_high": test + 0.01, "validation_accuracy": validation}
                           for o, lr, test, validation in rows])
    return StudyFrames(points=points, cells=pd.DataFrame(), curves=pd.DataFrame(), chosen_on="validation_accuracy")


def test_the_lr_figure_draws_each_optimizer_over_its_own_lrs_and_rings_the_validation_best(tmp_path, monkeypatch):
    from bench.studies.plot_lr import lr_plot
    from bench.studies.study import load_study

    drawn = []
    monkeypatch.setattr("bench.studies.plot_lr.figure_png", lambda figure: drawn.append(figure) or b"png")
    (tmp_path / "lr.toml").write_text(LR_STUDY)
    study = load_study(str(tmp_path / "lr.toml"))
    # the ring goes where validation is best (sgd 0.03, adam 0.001), not where test is (sgd 0.1, adam 0.003)
    data = lr_frames([("sgd", 0.1, 0.90, 0.80), ("sgd", 0.03, 0.85, 0.88), ("sgd", 0.01, 0.80, 0.82),
                      ("adam", 0.01, 0.70, 0.70), ("adam", 0.003, 0.89, 0.85), ("adam", 0.001, 0.86, 0.87)])
    plot = lr_plot(study, data)
    assert plot is not None and plot.name == "accuracy-vs-lr.png"
    assert "test split" in plot.caption and "validation split (5000 training images" in plot.caption
    (figure,) = drawn
    axes = figure.axes[0]
    solid = {line.get_label().split(" test")[0]: sorted(line.get_xdata()) for line in axes.lines
             if " test (" in line.get_label()}
    assert solid == {"optimizer sgd": [0.01, 0.03, 0.1], "optimizer adam": [0.001, 0.003, 0.01]}
    rings = [c.get_offsets().tolist()[0] for c in axes.collections  # scatters, less the legend's empty one
             if type(c).__name__ == "PathCollection" and len(c.get_offsets())]
    assert rings == [pytest.approx([0.03, 85.0]), pytest.approx([0.001, 86.0])]
    texts = [t.get_text() for t in axes.get_legend().get_texts()]
    assert "target 88.4%" in texts and axes.get_xscale() == "log"
    colours = [line.get_color() for line in axes.lines if " test (" in line.get_label()]
    assert len(set(colours)) == len(colours)

    (tmp_path / "no-lr.toml").write_text(LR_STUDY.split("[axes]")[0] + '[axes]\n"recipe.optimizer" = ["sgd", "adam"]\n'
                                         '"recipe.epochs" = [1, 2, 3]\n')
    assert lr_plot(load_study(str(tmp_path / "no-lr.toml")), data) is None
