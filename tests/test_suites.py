"""Suites: shipped ones load; every kind of bad suite is one line naming the file and key."""

import pytest

from bench.errors import BenchError
from bench.suites import available_suites, load_suite, parse_override

SHIPPED = ["cifar10-94", "airbench94", "cifar10-jpeg-airbench", "fashion-mnist-91", "mnist-mlp", "fashion-mnist-mlp"]

MINIMAL = """
name = "t"
target = 0.9
[dataset]
name = "fashion-mnist"
[model]
name = "mlp"
[recipe]
epochs = 1
batch_size = 64
lr = 0.1
"""


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_suites_load(name):
    suite = load_suite(name)
    assert suite.name == name
    assert 0 < suite.target <= 1


def test_defaults_are_filled_and_hash_is_stable(tmp_path):
    path = write(tmp_path, MINIMAL)
    a, b = load_suite(path), load_suite(path)
    assert a.recipe["momentum"] == 0.9 and a.recipe["augment"]["flip"] is False
    assert a.hash == b.hash


def test_override_is_recorded_and_changes_hash(tmp_path):
    path = write(tmp_path, MINIMAL)
    base = load_suite(path)
    changed = load_suite(path, ["recipe.lr=0.5", "recipe.augment.flip=true"])
    assert changed.recipe["lr"] == 0.5 and changed.recipe["augment"]["flip"] is True
    assert changed.overrides == {"recipe.lr": 0.5, "recipe.augment.flip": True}
    assert changed.hash != base.hash


@pytest.mark.parametrize("edit, fragment", [
    (lambda t: "bogus = 1\n" + t, "unknown key 'bogus'"),
    (lambda t: t + "\nbogus = 1\n", "unknown key 'recipe.bogus'"),
    (lambda t: t.replace("batch_size = 64", "batchsize = 64"), "did you mean 'recipe.batch_size'"),
    (lambda t: t.replace("batch_size = 64", "batch_size = 0"), "'recipe.batch_size' is 0"),
    (lambda t: t.replace("batch_size = 64", 'batch_size = "64"'), "'recipe.batch_size' must be an integer"),
    # a name is part of file names (calibration files, --out): '../' would write outside the folder
    (lambda t: t.replace('name = "t"', 'name = "../../elsewhere"', 1), "'name' is '../../elsewhere'"),
    (lambda t: t.replace("target = 0.9", "target = 1.5"), "'target' is 1.5"),
    (lambda t: t.replace("target = 0.9", "target = 0"), "'target' is 0"),
    (lambda t: t.replace("lr = 0.1", "lr = true"), "'recipe.lr' must be a number"),
    (lambda t: t.replace('name = "mlp"', 'name = "mlp"\nargs = 3'), "'model.args' must be a table"),
    (lambda t: t.replace('name = "fashion-mnist"', 'name = "svhn"'), "'dataset.name' is 'svhn'"),
    (lambda t: t.replace("epochs = 1", ""), "missing required key 'recipe.epochs'"),
    (lambda t: t + "[recipe.schedule]\nkind = \"piecewise\"\nknots = [[0.5, 1.0], [1.0, 0.0]]\n", "recipe.schedule.knots"),
])
def test_bad_suites_name_file_and_key(tmp_path, edit, fragment):
    path = write(tmp_path, edit(MINIMAL))
    with pytest.raises(BenchError) as err:
        load_suite(path)
    message = str(err.value)
    assert fragment in message
    assert path in message
    assert "\n" not in message


def test_malformed_toml(tmp_path):
    path = write(tmp_path, "name = \n[[[")
    with pytest.raises(BenchError, match="malformed TOML"):
        load_suite(path)


def test_unknown_suite_suggests_close_names():
    with pytest.raises(BenchError, match="did you mean.*cifar10-94"):
        load_suite("cifar10-49")


def test_missing_suite_file():
    with pytest.raises(BenchError, match="not found"):
        load_suite("nowhere/else.toml")


def test_override_parsing():
    assert parse_override("recipe.epochs=2") == ("recipe.epochs", 2)
    assert parse_override("recipe.precision=fp32") == ("recipe.precision", "fp32")
    assert parse_override("model.args={widths=[8,8,8]}") == ("model.args", {"widths": [8, 8, 8]})
    with pytest.raises(BenchError, match="key=value"):
        parse_override("recipe.epochs")


def test_user_suite_dir_is_listed(tmp_path, monkeypatch):
    write(tmp_path, MINIMAL, "mine.toml")
    monkeypatch.setenv("BENCH_SUITES", str(tmp_path))
    assert "mine" in available_suites()


@pytest.mark.parametrize("compile_mode", ["default", "auto", "max-autotune"])
def test_compile_with_fewer_than_two_warmup_steps_is_refused(tmp_path, compile_mode):
    path = write(tmp_path, MINIMAL)
    with pytest.raises(BenchError, match=r"s\.toml.*'recipe\.warmup_steps' is 1.*at least 2"):
        load_suite(path, [f'recipe.compile="{compile_mode}"', "recipe.warmup_steps=1"])
    assert load_suite(path, [f'recipe.compile="{compile_mode}"']).recipe["warmup_steps"] == 2
    assert load_suite(path, ["recipe.warmup_steps=0"]).recipe["compile"] == "off"  # no compile: no need


def test_workers_is_a_recipe_key_with_a_range(tmp_path):
    path = write(tmp_path, MINIMAL)
    assert load_suite(path).recipe["workers"] == 0 and load_suite(path, ["recipe.workers=2"]).recipe["workers"] == 2
    with pytest.raises(BenchError, match="recipe.workers"):
        load_suite(path, ["recipe.workers=-1"])


@pytest.mark.parametrize("schedule, fragment", [
    # numbers only: float() let "0.5" through, and numpy met the string mid-run
    ('kind = "piecewise"\nknots = [["0", "1"], ["1", "0"]]', "recipe.schedule.knots"),
    ('kind = "piecewise"\nknots = [[0, 1], [0.5, "0.5"], [1, 0]]', "recipe.schedule.knots"),
    ('kind = "piecewise"\nknots = [[0, 1], [1, true]]', "recipe.schedule.knots"),
    ('kind = "cosine_restarts"\nt0 = 1e-300', "recipe.schedule.t0"),
    ('kind = "cosine_restarts"\nt_mult = 1e300', "recipe.schedule.t_mult"),
])
def test_schedules_that_cannot_run_are_refused(tmp_path, schedule, fragment):
    path = write(tmp_path, MINIMAL + "[recipe.schedule]\n" + schedule + "\n")
    with pytest.raises(BenchError, match=fragment):
        load_suite(path)
