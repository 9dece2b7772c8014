"""Linked axes (a study's `link`): the axes of a group take their i-th values together instead of
crossing; [[exclude]] and [[include]] still apply afterwards; every bad `link` is one line naming
the study file."""

import pytest

from bench.errors import BenchError
from bench.studies.study import load_study

BASE = """
name = "t"
suite = "fashion-mnist-smoke"
seeds = [0]
"""


def write(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return str(path)


def values(study):
    return [tuple(v for _, v in p.values) for p in study.points]


def test_linked_axes_go_together_and_cross_the_others(tmp_path):
    study = load_study(write(tmp_path, BASE + """link = [["dataset.train_size", "recipe.epochs"]]
[axes]
"recipe.lr" = [0.1, 0.01]
"dataset.train_size" = [4000, 2000, 1000]
"recipe.epochs" = [1, 2, 4]
"""))
    assert values(study) == [(0.1, 4000, 1), (0.1, 2000, 2), (0.1, 1000, 4),
                             (0.01, 4000, 1), (0.01, 2000, 2), (0.01, 1000, 4)]
    # each linked key is still an axis of its own, and reaches the suite
    assert list(study.axes) == ["recipe.lr", "dataset.train_size", "recipe.epochs"]
    assert [(p.suite.dataset["train_size"], p.suite.recipe["epochs"]) for p in study.points[:3]] == \
        [(4000, 1.0), (2000, 2.0), (1000, 4.0)]


def test_an_include_adds_a_second_arm_off_the_link(tmp_path):
    """Fixed steps on the link, then every size at the first epochs: the shared point once."""
    study = load_study(write(tmp_path, BASE + """link = [["dataset.train_size", "recipe.epochs"]]
[axes]
"dataset.train_size" = [4000, 2000, 1000]
"recipe.epochs" = [1, 2, 4]

[[include]]
"dataset.train_size" = [4000, 2000, 1000]
"recipe.epochs" = 1
"""))
    assert values(study) == [(4000, 1), (2000, 2), (1000, 4), (2000, 1), (1000, 1)]


def test_without_link_the_grid_is_the_plain_product(tmp_path):
    study = load_study(write(tmp_path, BASE + """[axes]
"recipe.lr" = [0.1, 0.01]
"recipe.epochs" = [1, 2]
"""))
    assert values(study) == [(0.1, 1), (0.1, 2), (0.01, 1), (0.01, 2)]


AXES = """[axes]
"recipe.lr" = [0.1, 0.01]
"recipe.epochs" = [1, 2]
"dataset.train_size" = [4000, 2000, 1000]
"""


@pytest.mark.parametrize("link, fragment", [
    ('"recipe.lr"', "'link' must be a list of axis groups"),
    ('["recipe.lr", "recipe.epochs"]', "'link' must be a list of axis groups"),
    ('[["recipe.lr"]]', "link group 1 must list two or more axis names"),
    ('[["recipe.lr", 3]]', "link group 1 must list two or more axis names"),
    ('[["recipe.lr", "recipe.momentum"]]', "link group 1 names 'recipe.momentum', which is not an axis"),
    ('[["recipe.lr", "recipe.epochs"], ["recipe.epochs", "recipe.lr"]]', "axis 'recipe.epochs' is in two link groups"),
    ('[["recipe.lr", "dataset.train_size"]]', "link group 1: its axes must have equally many values"),
])
def test_a_bad_link_is_one_line_naming_the_file(tmp_path, link, fragment):
    path = write(tmp_path, BASE + f"link = {link}\n" + AXES)
    with pytest.raises(BenchError) as err:
        load_study(path)
    message = str(err.value)
    assert fragment in message and message.startswith(path) and "\n" not in message
