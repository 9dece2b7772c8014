"""An invocation: N runs of one suite, each written to the result file as it finishes.

suite -> dataset (prepared once) -> per seed: train_run -> record -> aggregate -> result file.
Ctrl-C keeps the finished runs (status interrupted); a NaN loss ends the invocation
as diverged; an unexpected error is recorded as failed, with the error, and re-raised.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench import finetune
from bench.datasets import ArrayDataset, load_dataset
from bench.distributed import SINGLE, Dist, settle
from bench.env import bf16_is_fast, fingerprint
from bench.errors import BenchError
from bench.loaders import choose_loader
from bench.measure import count_params, forward_flops_per_image, matmul_flops_per_s
from bench.models import build_model
from bench.progress import NullReporter, Reporter
from bench.record.build import dataset_block, error_block, finish, invocation_head
from bench.record.calibration import refuse_calibrated_seeds
from bench.record.files import ResultNotWritten, ResultWriter
from bench.record.stats import runs_auto_stop
from bench.seeds import check_seeds
from bench.sparsity import active_flops_per_image, output_positions
from bench.suites import Suite
from bench.train import PreparedData, resolve_device, train_run


class Interrupted(Exception):
    """Ctrl-C during an invocation; the finished runs were written."""

    def __init__(self, path: Path | None, paths: list[Path] | None = None):
        super().__init__("interrupted")
        self.path = path
        self.paths = paths if paths is not None else ([path] if path else [])


def subset(dataset: ArrayDataset, train_size: int | None, test_size: int | None,
           validation_size: int = 0, judged_on: str = "test") -> ArrayDataset:
    """Fixed subsets, the same for every seed and run, each from one seed-0 permutation of its split.

    The validation split is the last `validation_size` of the training set's permutation; the
    training images are the first `train_size` of the same permutation (all the rest without a
    train_size), so the two never share an image, and the validation images are the same whatever
    the train_size (a data-size study chooses every size's best on the same images). train_size
    counts the images trained on, after the carve. Without a validation split this is the first N
    of the permutation, as it always was. The test split is never touched by the carve. Judged on
    the validation split (dataset.judged_on), the test split is dropped unread and the validation
    images take its place, so every evaluation the trainer makes is on validation images."""
    def pick(images: np.ndarray, labels: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
        if size is None or size >= len(labels):
            return images, labels
        order = np.sort(np.random.default_rng(0).permutation(len(labels))[:size])
        return images[order], labels[order]

    if train_size is None and test_size is None and not validation_size:
        return dataset
    if judged_on == "validation":  # the test split is never read: the validation split stands in for it
        dataset = replace(dataset, test_images=np.zeros((0, *dataset.train_images.shape[1:]), np.uint8),
                          test_labels=np.zeros(0, np.int64))
    test_x, test_y = pick(dataset.test_images, dataset.test_labels, test_size)
    if not validation_size:
        train_x, train_y = pick(dataset.train_images, dataset.train_labels, train_size)
        return replace(dataset, train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y)
    total = len(dataset.train_labels)
    rest = total - validation_size
    if rest < 1:
        raise BenchError(f"dataset.validation_size {validation_size} leaves no training images ({dataset.name} has "
                         f"{total}); lower it")
    if train_size is not None and train_size > rest:
        raise BenchError(f"dataset.train_size {train_size} with dataset.validation_size {validation_size}: "
                         f"{dataset.name} has {total} training images, {rest} after the validation split; "
                         "lower one of them")
    order = np.random.default_rng(0).permutation(total)
    trained = np.sort(order[:train_size if train_size is not None else rest])
    held_out = np.sort(order[rest:])
    split = {"size": validation_size, "drawn_from": total,
             "rule": f"the last {validation_size} of numpy.random.default_rng(0).permutation({total}) over the "
                     f"training set; the training images are the first {len(trained)} of the same permutation"}
    validation_x, validation_y = dataset.train_images[held_out], dataset.train_labels[held_out]
    if judged_on == "validation":
        test_x, test_y = validation_x, validation_y
    return replace(dataset, train_images=dataset.train_images[trained], train_labels=dataset.train_labels[trained],
                   test_images=test_x, test_labels=test_y, validation_images=validation_x,
                   validation_labels=validation_y, validation_split=split, judged_on=judged_on)


def model_figures(suite: Suite, data: PreparedData) -> tuple[dict[str, Any], dict[str, int]]:
    """The result's model block, and where each conv and linear layer applies its weights (for
    the FLOPs a run's active weights imply), from one freshly built network."""
    model = build_model(suite.model["name"], data.num_classes, data.in_shape, suite.model["args"],
                        where=f"{suite.path}: model")
    if suite.model["freeze"] == "features":  # the trainable count is what fine-tuning trains
        finetune.freeze_features(model, suite.model["name"])
    flops = forward_flops_per_image(model, data.in_shape)
    figures = {"name": suite.model["name"], "args": suite.model["args"], **count_params(model),
               "flops_per_image": flops, "train_flops_per_image": 3 * flops, "input_shape": list(data.in_shape)}
    return figures, output_positions(model, data.in_shape)


def add_active_flops(run: dict[str, Any], dense_flops: int, positions: dict[str, int]) -> None:
    """The run's dense forward FLOPs and those its active weights imply, from its layers' nonzeros
    and where each layer applies its weights (a fresh network's forward: outside any timed region)."""
    sparsity = run.get("sparsity")
    if isinstance(sparsity, dict) and "layer_nonzeros" in sparsity:
        sparsity["flops_per_image"] = dense_flops
        sparsity["active_flops_per_image"] = active_flops_per_image(dense_flops, positions,
                                                                    sparsity["layer_nonzeros"])


def trained_counts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The model block's active figures, from the trained networks (mean over the complete runs;
    a pruning target makes them equal): until a run is in, they are the initialized network's."""
    counts = [r["sparsity"] for r in runs if r.get("status") == "complete" and isinstance(r.get("sparsity"), dict)]
    if not counts:
        return {}
    mean = lambda key: sum(c[key] for c in counts) / len(counts)  # noqa: E731
    return {"active_params": round(mean("active_params")), "active_fraction": mean("active_fraction"),
            "active_flops_per_image": round(mean("active_flops_per_image")),
            "sparsity_method": counts[0]["method"]}


def mfu(run: dict[str, Any], train_flops_per_image: int, peak_flops_per_s: float) -> float | None:
    """Model FLOPs utilization: training FLOPs (3x forward) per second of training time,
    over the dense matmul rate measured on this device in this invocation."""
    if not run.get("train_images_per_s") or not peak_flops_per_s:
        return None
    return train_flops_per_image * run["train_images_per_s"] / peak_flops_per_s


class Invocation:
    """One suite's invocation: prepared once, then run seed by seed, its file saved after each.

    `run_invocation` drives one of these; `run_race` drives several, interleaving their seeds.
    """

    def __init__(self, suite: Suite, *, runs: int | None, seed: int, device: torch.device, results_dir: Path,
                 reporter: Reporter, offline: bool, command: list[str] | None, loader: str,
                 after_run: Callable[[Path, int], None] | None = None, save_weights: Path | None = None,
                 dist: Dist = SINGLE, unsaved: list[str] | None = None,
                 runs_auto: tuple[float, int] | None = None, retrial: bool = False):
        self.suite, self.device, self.reporter, self.offline, self.loader = suite, device, reporter, offline, loader
        self.after_run = after_run  # told (result file, run index) once each run is saved
        self.weights_dir = save_weights
        self.unsaved = unsaved if unsaved is not None else []  # views asked for that could not be saved
        self.dist = dist
        dist.rank_batch(suite.resolved["recipe"]["batch_size"])  # an uneven split is refused before any work
        # Only rank 0 writes (the one result file); it refuses an unwritable folder before any work.
        self.writer = ResultWriter(results_dir) if dist.is_main else None
        self.runs_auto = runs_auto  # (ci width, max runs): seeds added until the CI is that narrow
        count = runs_auto[1] if runs_auto else runs if runs is not None else suite.resolved["runs"]
        if count < 1:
            raise BenchError(f"--runs {count}: give at least 1")
        check_seeds(seed, count, "--seed")
        self.seeds = [seed + i for i in range(count)]
        # before any work: a seed that chose the target must not be judged against it
        self.calibration = refuse_calibrated_seeds(suite, self.seeds, reporter.notice)
        self.command = command
        self.record: dict[str, Any] = {}
        self.path: Path | None = None
        self.ended = False  # diverged: no more runs
        self.retrial = retrial  # the first run's policy trial ignores the cache; the later ones may read it

    def prepare(self, peak: tuple[float, torch.dtype] | None = None) -> tuple[float, torch.dtype]:
        """Loads the data, counts the model, measures the matmul rate (unless given), and
        starts the record. Returns the rate so a race measures it once for all."""
        suite, device = self.suite, self.device
        t0 = time.perf_counter()
        dataset = load_dataset(suite.dataset["name"], path=suite.dataset["path"], reporter=self.reporter,
                               offline=self.offline)
        judged_on = suite.dataset.get("judged_on", "test")
        sizes = [("train_size", len(dataset.train_labels))]
        if judged_on == "test":  # judged on validation, the test split is not even counted
            sizes.append(("test_size", len(dataset.test_labels)))
        for key, whole in sizes:
            asked = suite.dataset[key]
            if asked is not None and asked > whole:  # all of it is used; the record's dataset block counts it
                self.reporter.notice(f"{suite.name}: dataset.{key} {asked} is more than {dataset.name}'s {whole} "
                                     f"images; all {whole} are used")
        try:
            dataset = subset(dataset, suite.dataset["train_size"], suite.dataset["test_size"],
                             suite.dataset["validation_size"], judged_on)
        except BenchError as exc:  # the split sizes do not fit this data set
            raise BenchError(f"{suite.path}: {exc}") from None
        self.data = PreparedData.from_dataset(dataset)
        data_prep_s = time.perf_counter() - t0
        if peak is None:
            dtype = torch.bfloat16 if bf16_is_fast(device) else torch.float32
            peak = (matmul_flops_per_s(device, dtype), dtype)
        # MFU's denominator: the matmul rate of every rank's device (each measured alike)
        self.peak = peak[0] * self.dist.world_size
        env = fingerprint(device)
        env["distributed"] = self.dist.describe()
        model, self.positions = model_figures(suite, self.data)
        self.record = invocation_head(
            suite, run_id=self.writer.run_id if self.writer else None,
            status="interrupted",  # until the last run is in
            env=env, model=model, dataset=dataset_block(dataset, self.data.in_shape),
            invocation={"device": device.type, "seeds": self.seeds, "data_prep_s": data_prep_s,
                        "loader": self.loader, "matmul_flops_per_s": peak[0], "world_size": self.dist.world_size,
                        "matmul_dtype": str(peak[1]).replace("torch.", ""), "command": self.command or sys.argv,
                        "race": None, "calibration": self.calibration})
        if self.runs_auto:
            self.record["invocation"]["runs_auto"] = runs_auto_stop([], *self.runs_auto, runs=0)
        return peak

    def save(self, status: str) -> Path | None:
        record = self.record
        finish(record, status, self.suite.target)
        if self.writer is not None:  # the other ranks hold the same record and write nothing
            self.path = self.writer.write(record)
        return self.path

    def run(self, i: int) -> None:
        """Trains seed number i and saves; a diverged run ends the invocation."""
        seed, count = self.seeds[i], len(self.seeds)
        label = f"{self.suite.name} run {i + 1}/{count} seed {seed}"
        save, saved = None, {}
        if self.weights_dir is not None and self.writer is not None:  # rank 0 saves the one copy
            name = f"{self.writer.run_id}-seed{seed}.pt"  # the result's unique id: never two runs on one file
            save = lambda model: self._save_weights(model, name, seed, saved)  # noqa: E731
        run = train_run(self.suite.resolved, self.data, seed, self.device, self.reporter, label=label,
                        loader=self.loader, save_weights=save, dist=self.dist, retrial=self.retrial)
        self.retrial = False
        if save is not None:  # where the weights went, or null when they could not be saved
            run["weights_file"] = saved.get("path")
        run["mfu"] = mfu(run, self.record["model"]["train_flops_per_image"], self.peak)
        add_active_flops(run, self.record["model"]["flops_per_image"], self.positions)
        self.record["runs"].append(run)
        self.record["model"].update(trained_counts(self.record["runs"]))
        if run["status"] == "diverged":
            self.reporter.notice(f"{self.suite.name} seed {seed}: the loss became NaN or infinite; "
                                 "the invocation ends as diverged")
            self.ended = True
            self._auto_stopped("diverged")
            self.save("diverged")
        else:
            self.ended = self._auto_stopped(None)
            self.save("complete" if self.ended or i + 1 >= count else "interrupted")
        if self.after_run is not None:
            self.after_run(self.path, len(self.record["runs"]) - 1)

    def _auto_stopped(self, why: str | None) -> bool:
        """With --runs auto: records why the seeds stop (or that they go on); the planned seeds
        become those run. True when no more seeds are wanted."""
        if not self.runs_auto:
            return False
        runs = self.record["runs"]
        state = runs_auto_stop([r["accuracy"] for r in runs if r["status"] == "complete"], *self.runs_auto,
                               runs=len(runs))
        state["stopped"] = why or state["stopped"]
        self.record["invocation"]["runs_auto"] = state
        if state["stopped"] is not None:
            self.seeds = self.record["invocation"]["seeds"] = self.seeds[:len(runs)]
        return state["stopped"] is not None

    def _save_weights(self, model: torch.nn.Module, name: str, seed: int, saved: dict[str, str]) -> Path | None:
        """A view of the run: failing to save it (a full disk) must not fail the run it shows."""
        try:
            path = finetune.save_weights(model, self.weights_dir, name)
        except (BenchError, OSError) as exc:
            reason = str(exc) if isinstance(exc, BenchError) else f"{self.weights_dir / name}: {exc.strerror or exc}"
            self.unsaved.append(f"--save-weights: the weights of {self.suite.name} seed {seed} ({reason})")
            self.reporter.notice(f"weights not saved: {self.unsaved[-1]}; the run itself is kept")
            return None
        saved["path"] = str(path)
        return path

    def stop(self, exc: BaseException) -> None:
        """Keeps what finished when the invocation is cut short."""
        if self.ended or not self.record or self.record["status"] != "interrupted":
            return
        if isinstance(exc, ResultNotWritten):  # the disk refused the file: a second write would fail alike
            return
        if isinstance(exc, KeyboardInterrupt):
            if self.record["runs"]:
                self.save("interrupted")
        elif isinstance(exc, BenchError):
            if self.record["runs"]:  # bad input before any run leaves results/ untouched
                self.record["error"] = error_block(exc)
                self.save("failed")
        else:
            self.record["error"] = error_block(exc, traceback.format_exc())
            self.save("failed")


def run_race(suites: list[Suite], *, runs: int | None = None, seed: int = 0, device_choice: str = "auto",
             results_dir: Path, reporter: Reporter | None = None, offline: bool = False,
             command: list[str] | None = None, loader: str = "auto",
             after_run: Callable[[int, Path, int], None] | None = None,
             save_weights: Path | None = None, dist: Dist = SINGLE,
             unsaved: list[str] | None = None,
             runs_auto: tuple[float, int] | None = None,
             retrial: bool = False) -> list[tuple[dict[str, Any], Path | None]]:
    """Several suites in one invocation, their seeds interleaved (A B A B ...), so that what
    the machine does meanwhile (clocks, heat, neighbours) falls on all of them alike.
    Each suite gets its own result file; each names the others in `invocation.race`.
    `after_run(suite position, result file, run index)` is called once each run is saved.
    With several ranks (`dist`, joined by the caller) every rank calls this alike; rank 0 writes
    the files and alone calls after_run. A view that could not be saved (weights on a full disk)
    is added to `unsaved` in words; the run and its result file stand. `runs_auto` = (W, M): each
    suite adds seeds until the 95% CI half-width of its mean accuracy is <= W (after 3 runs at
    least) or M runs are done (`bench run --runs auto`). `retrial`: each suite's first run decides
    its compute policy by a fresh trial, whatever the policy cache holds (`bench run --retrial`)."""
    reporter = reporter or NullReporter()
    device = dist.device if dist.device is not None else resolve_device(device_choice)
    choose_loader(loader, 0, device)  # an unknown or uninstalled loader is refused before any work
    entrants = [Invocation(s, runs=runs, seed=seed, device=device, results_dir=results_dir, reporter=reporter,
                           offline=offline, command=command, loader=loader, dist=dist,
                           after_run=None if after_run is None or not dist.is_main else _bound(after_run, position),
                           save_weights=save_weights, unsaved=unsaved, runs_auto=runs_auto, retrial=retrial)
                for position, s in enumerate(suites)]
    try:
        peak = None
        # Each node's local rank 0 prepares the data first (download, decode, cache); the other
        # ranks then read its cache instead of racing it to the same files.
        first = not dist.active or dist.local_rank == 0
        if not first:
            dist.barrier()
        for entrant in entrants:
            peak = entrant.prepare(peak)
        if dist.active and first:
            dist.barrier()
        if len(entrants) > 1:
            for entrant in entrants:
                entrant.record["invocation"]["race"] = [
                    {"suite": other.suite.name, "id": other.writer.run_id if other.writer else None}
                    for other in entrants if other is not entrant]
        for i in range(max(len(e.seeds) for e in entrants)):
            for entrant in entrants:
                if not entrant.ended and i < len(entrant.seeds):
                    entrant.run(i)
        return [(e.record, e.path) for e in entrants]
    except BaseException as exc:
        if dist.active:
            exc = settle(exc)
        for entrant in entrants:
            entrant.stop(exc)
        if isinstance(exc, KeyboardInterrupt):
            paths = [e.path for e in entrants if e.path is not None]
            raise Interrupted(paths[0] if paths else None, paths) from None
        raise
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _bound(after_run: Callable[[int, Path, int], None], position: int) -> Callable[[Path, int], None]:
    return lambda path, index: after_run(position, path, index)


def run_invocation(suite: Suite, **options: Any) -> tuple[dict[str, Any], Path | None]:
    """N runs of one suite (see run_race for the options)."""
    return run_race([suite], **options)[0]
