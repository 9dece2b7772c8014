"""The validation split (dataset.validation_size): carved deterministically out of the training set,
disjoint from the images trained on, recorded in the dataset block; each run's validation_accuracy
measured on it after the timed region, beside the test accuracy."""

import json

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.datasets import ArrayDataset
from bench.errors import BenchError
from bench.record.schema import problem
from bench.runner import subset
from tests.helpers import separable_dataset, suite_text


def numbered_dataset(n_train: int = 1000, n_test: int = 300) -> ArrayDataset:
    """Every image carries its own index in its first two pixels, so a subset names the images it took."""
    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        images = np.zeros((n, 2, 2, 1), dtype=np.uint8)
        images[:, 0, 0, 0], images[:, 0, 1, 0] = np.arange(n) % 256, np.arange(n) // 256
        return images, (np.arange(n) % 3).astype(np.int64)

    (train_x, train_y), (test_x, test_y) = split(n_train), split(n_test)
    return ArrayDataset(name="numbered", train_images=train_x, train_labels=train_y, test_images=test_x,
                        test_labels=test_y, classes=("a", "b", "c"), source="synthetic", sha256=None)


def indices(images: np.ndarray) -> list[int]:
    return [int(i) for i in images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 1, 0].astype(int)]


def test_the_split_is_the_same_every_time_disjoint_and_sized():
    data = numbered_dataset()
    a, b = subset(data, None, None, 200), subset(data, None, None, 200)
    assert indices(a.validation_images) == indices(b.validation_images)
    assert len(a.validation_labels) == 200 and len(a.train_labels) == 800 and len(a.test_labels) == 300
    assert set(indices(a.validation_images)).isdisjoint(indices(a.train_images))
    assert sorted(indices(a.validation_images) + indices(a.train_images)) == list(range(1000))
    # the labels travel with their images
    assert list(a.validation_labels) == [i % 3 for i in indices(a.validation_images)]
    # the test split is untouched by the carve
    assert indices(a.test_images) == list(range(300))
    assert a.validation_split == {"size": 200, "drawn_from": 1000, "rule": a.validation_split["rule"]}
    assert "default_rng(0).permutation(1000)" in a.validation_split["rule"]


def test_train_size_counts_the_images_trained_on_and_never_moves_the_split():
    data = numbered_dataset()
    whole, small = subset(data, None, None, 200), subset(data, 300, 100, 200)
    assert len(small.train_labels) == 300 and len(small.test_labels) == 100
    assert indices(small.validation_images) == indices(whole.validation_images)
    assert set(indices(small.train_images)) <= set(indices(whole.train_images))
    # every size up to the rest fits; one image more is refused in one line naming both keys
    assert len(subset(data, 800, None, 200).train_labels) == 800
    with pytest.raises(BenchError, match="dataset.train_size 801 with dataset.validation_size 200"):
        subset(data, 801, None, 200)
    with pytest.raises(BenchError, match="dataset.validation_size 1000 leaves no training images"):
        subset(data, None, None, 1000)


def test_without_a_split_the_subsets_are_what_they_always_were():
    data = numbered_dataset()
    assert subset(data, None, None) is data
    plain = subset(data, 300, None)
    expected = sorted(int(i) for i in np.random.default_rng(0).permutation(1000)[:300])
    assert indices(plain.train_images) == expected and plain.validation_images is None


def flipped_test_set() -> ArrayDataset:
    """The separable set with its test labels swapped: a network that learned the training rule is
    right on the validation images (drawn from training) and wrong on the test images."""
    data = separable_dataset(n_train=320)
    return ArrayDataset(name=data.name, train_images=data.train_images, train_labels=data.train_labels,
                        test_images=data.test_images, test_labels=1 - data.test_labels, classes=data.classes,
                        source=data.source, sha256=data.sha256)


def run_tiny(tmp_path, monkeypatch, *sets: str) -> tuple[int, dict | None]:
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text(epochs=3, target=0.5))
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: flipped_test_set())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["run", str(suite), "--runs", "1", "--device", "cpu", "--results", str(tmp_path / "out"),
                     *[arg for s in sets for arg in ("--set", s)]])
    finally:
        torch.set_num_threads(threads)
    files = sorted((tmp_path / "out").glob("*.json"))
    return code, json.loads(files[0].read_text()) if files else None


def test_a_run_records_validation_accuracy_beside_the_test_accuracy(tmp_path, monkeypatch):
    code, record = run_tiny(tmp_path, monkeypatch, "dataset.validation_size=64")
    run = record["runs"][0]
    assert run["status"] == "complete"
    assert run["validation_accuracy"] >= 0.9 and run["accuracy"] <= 0.1  # the two splits disagree by construction
    assert run["validation_eval_s"] > 0
    assert record["dataset"]["train_size"] == 256 and record["dataset"]["validation_size"] == 64
    assert record["dataset"]["test_size"] == 128 and record["dataset"]["validation_split"]["drawn_from"] == 320
    assert run["steps"] == 3 * (256 // 32)  # trained on what the carve left, nothing more
    assert problem(record) is None


def test_an_auto_evaluation_batch_evaluates_the_validation_and_training_sets_too(tmp_path, monkeypatch):
    """eval_batch_size = "auto" (fashion-mnist-91's) is decided by the policy trial; the evaluations
    after the clock use the decided batch (a study on that suite with a validation split once
    failed every cell there, after training)."""
    _, record = run_tiny(tmp_path, monkeypatch, "dataset.validation_size=64", 'recipe.eval_batch_size="auto"',
                         "recipe.train_eval=100")
    run = record["runs"][0]
    assert run["status"] == "complete", record.get("error")  # (exit 1: the flipped test set misses the target)
    assert run["validation_accuracy"] >= 0.9 and run["train_eval_images"] == 100
    assert isinstance(run["eval_batch_size"], int) and problem(record) is None


def test_without_a_split_validation_accuracy_is_null(tmp_path, monkeypatch):
    _, record = run_tiny(tmp_path, monkeypatch)
    assert record["runs"][0]["validation_accuracy"] is None and "validation_eval_s" not in record["runs"][0]
    assert record["dataset"]["validation_size"] == 0 and record["dataset"]["validation_split"] is None
    assert problem(record) is None


def test_a_split_larger_than_the_set_is_one_line(tmp_path, monkeypatch, capsys):
    code, record = run_tiny(tmp_path, monkeypatch, "dataset.validation_size=64", "dataset.train_size=300")
    err = capsys.readouterr().err
    assert code == 2 and record is None and "Traceback" not in err
    assert "tiny.toml: dataset.train_size 300 with dataset.validation_size 64" in err


def test_a_negative_split_is_refused_naming_the_key(tmp_path):
    from bench.suites import load_suite

    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text())
    with pytest.raises(BenchError, match="dataset.validation_size.*an integer >= 0"):
        load_suite(str(suite), ["dataset.validation_size=-1"])


def test_dalis_file_reader_is_refused_a_split_it_would_train_on(tmp_path, monkeypatch):
    """DALI's file reader reads the training folder itself: it cannot leave the validation images out."""
    pytest.importorskip("nvidia.dali")
    from PIL import Image

    from bench.datasets import load_dataset
    from bench.suites import load_suite
    from bench.train import PreparedData, train_run

    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "cache"))
    for split, count in (("train", 20), ("test", 6)):
        for cls, level in (("bright", 170), ("dark", 70)):
            (tmp_path / "set" / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(np.full((8, 8, 3), level, np.uint8)).save(tmp_path / "set" / split / cls / f"{i}.png")
    suite = tmp_path / "files.toml"
    suite.write_text(suite_text().replace('name = "fashion-mnist"', f'name = "imagefolder"\npath = "{tmp_path / "set"}"'))
    resolved = load_suite(str(suite), ["dataset.validation_size=8", "recipe.batch_size=8"]).resolved
    data = PreparedData.from_dataset(subset(load_dataset("imagefolder", path=tmp_path / "set"), None, None, 8))
    with pytest.raises(BenchError, match="DALI's file reader reads every training image"):
        train_run(resolved, data, seed=0, device=torch.device("cpu"), loader="dali")


def test_a_size_past_the_set_uses_all_of_it_and_says_so(tmp_path, monkeypatch):
    # all of the set is trained on, as before; the notice says so and the record counts what was used
    from bench.progress import NullReporter
    from bench.runner import run_invocation
    from bench.suites import load_suite
    from tests.helpers import separable_dataset, suite_text

    notices = []

    class Noting(NullReporter):
        def notice(self, message):
            notices.append(message)

    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    path = tmp_path / "tiny.toml"
    path.write_text(suite_text(epochs=1))
    suite = load_suite(str(path), ["dataset.train_size=100000"])
    record, _ = run_invocation(suite, runs=1, device_choice="cpu", results_dir=tmp_path / "r", reporter=Noting())
    assert record["dataset"]["train_size"] == 256
    assert any("dataset.train_size 100000 is more than" in n and "all 256 are used" in n for n in notices), notices
