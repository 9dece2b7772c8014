"""Study files: the shipped ones load; expansion (grid, exclude, include, random); every bad
study is one line naming the file, the axis and the value, before anything runs."""

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.studies.study import available_studies, canonical, identity_hash, load_study, toml_value
from bench.suites import load_suite, parse_override

SHIPPED = ["fmnist-data-size", "fmnist-optimizers", "fmnist-mlp-lr", "cifar10-lenet5-batch"]

BASE = """
name = "t"
suite = "fashion-mnist-smoke"
seeds = [0, 1]
"""


def write(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def points(study):
    return [tuple(v for _, v in p.values) for p in study.points]


@pytest.mark.parametrize("name", sorted(set(SHIPPED) | set(available_studies())))
def test_shipped_studies_load_and_are_listed(name):
    study = load_study(name)
    assert study.name == name and name in available_studies()
    assert len(study.cells) == len(study.points) * len(study.seeds) > 1


def test_grid_order_exclude_and_include(tmp_path):
    text = BASE + """
[axes]
"recipe.lr" = [0.1, 0.01]
recipe.batch_size = [32, 64, 128]
[[exclude]]
"recipe.lr" = 0.1
"recipe.batch_size" = [64, 128]
[[exclude]]
"recipe.batch_size" = 32
[[include]]
"recipe.lr" = [0.1, 0.01]
"recipe.batch_size" = 32
"""
    study = load_study(write(tmp_path, text))
    # the first axis varies slowest; excluded points leave; included ones come back at the end
    assert points(study) == [(0.01, 64), (0.01, 128), (0.1, 32), (0.01, 32)]
    assert [p.suite.recipe["lr"] for p in study.points] == [0.01, 0.01, 0.1, 0.01]
    assert len({p.identity for p in study.points}) == 4
    assert [c.seed for c in study.cells[:2]] == [0, 1] and study.cells[0].key == f"{study.points[0].identity}-s0"


def test_random_strategy_draws_the_same_points_every_time(tmp_path):
    text = BASE + 'strategy = "random"\nsamples = 3\n[axes]\n"recipe.lr" = [0.1, 0.03, 0.01, 0.003]\n' \
                  '"recipe.batch_size" = [32, 64]\n'
    path = write(tmp_path, text)
    first, again = points(load_study(path)), points(load_study(path))
    assert first == again and len(set(first)) == 3
    assert points(load_study(write(tmp_path, text, "b.toml"))) == first  # the file's name plays no part
    reseeded = points(load_study(write(tmp_path, text.replace("samples = 3", "samples = 3\nsample_seed = 7"),
                                       "c.toml")))
    assert reseeded != first and len(set(reseeded)) == 3


def test_set_keys_dotted_or_quoted_mean_the_same(tmp_path):
    quoted = load_study(write(tmp_path, BASE + '[set]\n"recipe.epochs" = 3\n[axes]\n"recipe.lr" = [0.1]\n', "a.toml"))
    dotted = load_study(write(tmp_path, BASE + "[set]\nrecipe.epochs = 3\n[axes]\nrecipe.lr = [0.1]\n", "b.toml"))
    assert quoted.fixed == dotted.fixed == {"recipe.epochs": 3}
    assert quoted.points[0].identity == dotted.points[0].identity


def test_a_cell_is_the_bench_run_line_it_records(tmp_path):
    """The cell's identity (suite hash) is what `bench run` with its recorded --set gives."""
    study = load_study("fmnist-data-size")
    cell = study.cells[7]
    command = study.cell_command(cell)
    assert command[:3] == ["bench", "run", "fashion-mnist-mlp"]
    assert command[command.index("--seed") + 1] == str(cell.seed)
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    ran = load_suite("fashion-mnist-mlp", sets)
    assert ran.hash == cell.point.suite.hash and identity_hash(ran.resolved) == cell.point.identity
    assert [parse_override(s)[1] for s in sets][-3:] == [v for _, v in cell.point.values]


@pytest.mark.parametrize("value", [1, 0.5, True, "adam", [32, 64], {"hidden": [32], "name": "x y"}])
def test_toml_value_reads_back(value):
    assert parse_override(f"k={toml_value(value)}")[1] == value


def test_canonical_values():
    assert canonical(1) == canonical(1.0) and canonical(True) != canonical(1)


AXES = '[axes]\n"recipe.lr" = [0.1, 0.01]\n'


@pytest.mark.parametrize("text, fragment", [
    (BASE + '[axes]\n"recipe.lrr" = [0.1]\n', "unknown axis key 'recipe.lrr'; did you mean 'recipe.lr'?"),
    (BASE + '[axes]\n"recipe.lr" = []\n', "axis 'recipe.lr' is empty"),
    (BASE + '[axes]\n"recipe.lr" = [0.1, "fast"]\n', "axis 'recipe.lr' value \"fast\": 'recipe.lr' must be a number"),
    (BASE + '[axes]\n"recipe.optimizer" = ["sgd", "nadam"]\n', "axis 'recipe.optimizer' value \"nadam\""),
    (BASE + '[axes]\n"recipe.batch_size" = [64, 0]\n', "axis 'recipe.batch_size' value 0: 'recipe.batch_size' is 0"),
    (BASE + '[axes]\n"recipe.lr" = 0.1\n', "axis 'recipe.lr' must be a list"),
    (BASE + '[axes]\n"recipe.lr" = [0.1, 0.10]\n', "axis 'recipe.lr' lists the value 0.1 twice"),
    (BASE + "[axes]\n", "'axes' must be a table ([axes]) with at least one axis"),
    (BASE + "speed = 3\n" + AXES, "unknown key 'speed'"),
    (BASE.replace("[0, 1]", "[0, 0]") + AXES, "'seeds' lists a seed twice"),
    (BASE.replace("[0, 1]", f"[0, {2**32}]") + AXES, "'seeds' holds 4294967296, past 4294967295"),
    (BASE.replace("[0, 1]", "[]") + AXES, "'seeds' is []"),
    (BASE.replace("fashion-mnist-smoke", "fashion-mnist-smok") + AXES, "did you mean fashion-mnist-smoke"),
    (BASE + 'strategy = "random"\n' + AXES, "strategy random needs 'samples'"),
    (BASE + 'strategy = "random"\nsamples = 5\n' + AXES, "'samples' is 5 but the grid has only 2 points"),
    (BASE + '[set]\n"recipe.lr" = 0.5\n' + AXES, "axis 'recipe.lr' is also in [set]"),
    (BASE + '[set]\n"recipe.bogus" = 1\n' + AXES, "[set] unknown suite key 'recipe.bogus'"),
    (BASE + AXES + '[[include]]\n"recipe.lr" = 0.3\n', "[[include]] entry 1: axis 'recipe.lr' value 0.3 is not one"),
    (BASE + AXES + '"recipe.batch_size" = [32]\n[[include]]\n"recipe.lr" = 0.1\n',
     "[[include]] entry 1 gives no value for the axis 'recipe.batch_size'"),
    (BASE + AXES + '[[exclude]]\n"recipe.epochs" = 1\n',
     "[[exclude]] entry 1 names 'recipe.epochs', which is not an axis"),
    (BASE + AXES + '[[exclude]]\n"recipe.lr" = [0.1, 0.01]\n', "no point is left to run"),
    (BASE.replace("smoke", "mlp") + '[axes]\n"recipe.precision" = ["fp32", "fp16"]\n'
                                    'devices = [["cpu", "cuda"], ["cpu"]]\n',
     "the point recipe.precision=fp16, devices=[\"cpu\"]: 'recipe.precision' fp16 is for CUDA"),
    (BASE + '[axes]\n"recipe.augment" = [{flip = false}, {}]\n', "resolve to the same suite"),
    ('name = "x y"\nsuite = "fashion-mnist-smoke"\nseeds = [0]\n' + AXES, "'name' is 'x y'"),
    (BASE + "[axes\n", "malformed TOML"),
])
def test_bad_studies_are_one_line_naming_the_file(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(BenchError) as err:
        load_study(path)
    message = str(err.value)
    assert fragment in message and message.startswith(path) and "\n" not in message


def test_a_bad_axis_value_fails_before_training_in_one_line(tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a cell ran")

    monkeypatch.setattr("bench.runner.train_run", no_training)
    path = write(tmp_path, BASE + '[axes]\n"recipe.lr" = [0.1, -1.0]\n')
    results = tmp_path / "results"
    assert main(["sweep", path, "--results", str(results)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err
    assert "axis 'recipe.lr' value -1.0" in lines[0] and path in lines[0]
    assert not results.exists()  # nothing was created


def test_unknown_study_suggests():
    with pytest.raises(BenchError, match="did you mean fmnist-optimizers"):
        load_study("fmnist-optimiser")


def test_a_new_suite_key_at_its_default_keeps_every_cell_identity(monkeypatch):
    """A bench upgrade that adds a suite key must not orphan a study's results; a changed value must."""
    from bench.suites import SCHEMA, Key

    before = {cell.key for cell in load_study("fmnist-optimizers").cells}
    suite_hashes = {p.suite.hash for p in load_study("fmnist-optimizers").points}
    recipe = dict(SCHEMA["recipe"], new_knob=Key("float", default=1.0))
    monkeypatch.setitem(SCHEMA, "recipe", recipe)
    after = load_study("fmnist-optimizers")
    assert {cell.key for cell in after.cells} == before
    assert {p.suite.hash for p in after.points}.isdisjoint(suite_hashes)  # the suite hash did change
    monkeypatch.setitem(SCHEMA, "recipe", dict(recipe, new_knob=Key("float", default=2.0)))
    assert {cell.key for cell in load_study("fmnist-optimizers").cells} == before  # still every cell at default
    changed = load_study("fmnist-optimizers").points[0].suite
    assert identity_hash({**changed.resolved, "recipe": {**changed.recipe, "new_knob": 3.0}}) != \
        load_study("fmnist-optimizers").points[0].identity


def test_a_suites_default_runs_and_description_keep_its_cells_results(tmp_path):
    """A cell trains one seed: raising the base suite's default runs or rewording its description
    changes nothing a cell ran, so the study's result files still stand for their cells."""
    study = load_study("fmnist-91-budget")
    point = study.points[0]
    reworded = {**point.suite.resolved, "runs": point.suite.resolved["runs"] + 2, "description": "reworded"}
    assert identity_hash(reworded) == point.identity
    assert identity_hash({**point.suite.resolved, "recipe": {**point.suite.recipe, "epochs": 7}}) != point.identity
