"""Every suite key in one line each: its type, default and meaning, from the schema in bench.suites.

`bench show --keys` prints this table and scripts/suite_keys_doc.py writes it to
docs/suite-keys.md (tests/test_show.py fails while the committed page differs). The type, the
default and the allowed values come from the schema itself; the meaning is written here, one
line per key, and a key the schema has without one fails the same test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bench.suites import Key, schema_keys, schema_node

MEANINGS: dict[str, str] = {
    "name": "the suite's name: result files, calibration files and `bench run NAME` use it",
    "description": "one line shown by `bench list` (kept short) and `bench show`",
    "mode": "budget: train the whole recipe, judge the final accuracy; reach: stop at the first evaluation at "
            "or above the target",
    "target": "the top-1 test accuracy the runs are judged against",
    "runs": "runs (seeds 0, 1, ...) of one invocation; `bench run --runs N` overrides it",
    "target_source": "where the target comes from: a published result, or the file `bench calibrate` wrote; "
                     "without it (or citing another suite's calibration) the target is unsourced",
    "provisional": "true while the target is not yet measured on the hardware the suite is sized for",
    "devices": "where the suite is meant to run (--device picks where it does)",
    "pass_rule": "how the runs' accuracies decide the verdict: mean (airbench), every (MLPerf) or fraction:P",
    "dataset.name": "the data set; imagefolder reads your own train/<class>/ and test/<class>/ images",
    "dataset.path": "a folder or archive holding the data set (required for imagefolder); relative paths are "
                    "taken from the working directory",
    "dataset.train_size": "train on a fixed subset of this many training images (the same for every run)",
    "dataset.test_size": "evaluate on a fixed subset of this many test images",
    "dataset.validation_size": "training images held out as a validation split (0: none); studies choose on it",
    "model.name": "the network, from the model registry (`bench specs` describes each)",
    "model.args": "the model's own arguments, e.g. { hidden = [256] } or { widths = [32, 64, 64] }",
    "model.init": "start from a saved state dict (`bench run --save-weights` writes them): fine-tuning",
    "model.freeze": "features: train only the decision layers (the model's features stay fixed)",
    "recipe.epochs": "the training budget in epochs (fractions allowed)",
    "recipe.batch_size": "training images per step (the global batch when several ranks train)",
    "recipe.eval_batch_size": "images per evaluation batch; auto: the policy trial picks the fastest",
    "recipe.optimizer": "the optimizer (adam, adamw, adadelta take torch's defaults for their other settings)",
    "recipe.lr": "the peak learning rate (the schedule multiplies it)",
    "recipe.momentum": "SGD momentum (and Muon's non-filter part's)",
    "recipe.nesterov": "SGD with Nesterov momentum",
    "recipe.weight_decay": "L2 weight decay",
    "recipe.label_smoothing": "label smoothing of the cross-entropy loss",
    "recipe.norm_lr_scale": "norm-layer parameters train at lr times this, with weight decay divided by it",
    "recipe.whiten_bias_epochs": "epochs during which a data-initialized whitening layer's bias trains (airbench)",
    "recipe.tta": "test-time augmentation at evaluation: 0 none, 1 mirror, 2 mirror and translate",
    "recipe.precision": "arithmetic of the training step; auto: bf16 where the device runs it fast, else fp32",
    "recipe.channels_last": "memory layout of images and conv weights; auto: the policy trial decides",
    "recipe.compile": "torch.compile mode; auto: compiled where the policy trial says it pays back within the run",
    "recipe.warmup_steps": "steps on random labels before the clock starts (compiling, kernel choice), then undone",
    "recipe.workers": "worker processes of the torch loader (per-sample crops on the host); other loaders ignore it",
    "recipe.sync_bn": "several ranks: batch-norm statistics over the global batch (SyncBatchNorm, CUDA only)",
    "recipe.curve_eval": "evaluate after every epoch (the accuracy curve); reach mode decides on these",
    "recipe.train_eval": "after the clock stops, top-1 on this many training images (0: not measured)",
    "recipe.schedule.kind": "the learning-rate schedule",
    "recipe.schedule.knots": "piecewise: [fraction of training, lr multiplier] points from 0 to 1",
    "recipe.schedule.pct_start": "onecycle: the fraction of training spent rising to the peak",
    "recipe.schedule.div_factor": "onecycle: the starting lr is lr / div_factor",
    "recipe.schedule.final_div_factor": "onecycle: the final lr is the starting lr / final_div_factor",
    "recipe.schedule.milestones": "step: epochs at which the lr is multiplied by gamma",
    "recipe.schedule.gamma": "step: the factor applied at each milestone",
    "recipe.schedule.t0": "cosine_restarts: the first period, in epochs",
    "recipe.schedule.t_mult": "cosine_restarts: each period is this many times longer than the last",
    "recipe.schedule.min_factor": "cosine_restarts: the lowest lr multiplier of each period",
    "recipe.augment.flip": "random horizontal flips",
    "recipe.augment.alternating_flip": "airbench's flips: random in the first epoch, then alternating each epoch",
    "recipe.augment.translate": "random translation by up to this many pixels",
    "recipe.augment.cutout": "a random square of this side is blanked in each image (0: off)",
    "recipe.muon.lr": "optimizer muon: the learning rate of the conv filters' Muon steps",
    "recipe.muon.momentum": "optimizer muon: the filters' momentum",
    "recipe.muon.nesterov": "optimizer muon: Nesterov momentum for the filters",
    "recipe.muon.ns_steps": "optimizer muon: Newton-Schulz iterations orthogonalizing each update",
    "recipe.muon.weight_decay": "optimizer muon: the filters' weight decay",
    "recipe.ema.every": "weight EMA: update a shadow copy every this many steps; evaluations use it (0: off)",
    "recipe.ema.decay": "weight EMA: the shadow moves toward the weights by 1 - decay",
    "recipe.bptt.mode": "sequence models: backpropagation through time over the whole sequence or in windows",
    "recipe.bptt.length": "bptt: the window length in steps",
    "recipe.bptt.step": "bptt: steps between window starts (0: the window length)",
    "recipe.sparsity.method": "sparse training: an L1 penalty, magnitude pruning, or none",
    "recipe.sparsity.l1": "l1: the coefficient of sum |w| over conv and linear weights, added to the loss",
    "recipe.sparsity.threshold": "pruning: remove weights with |w| below this",
    "recipe.sparsity.target": "pruning: the fraction of prunable weights left active",
    "recipe.sparsity.scope": "pruning: one threshold over all layers (global) or one per layer",
    "recipe.sparsity.prune_epochs": "pruning: prune after these epochs; several prune gradually to the target",
    "recipe.sparsity.retrain_lr_factor": "pruning: the retraining after the first pruning runs at lr times this",
    "recipe.lookahead.every": "lookahead: every k steps the weights move toward their slow average (0: off)",
    "recipe.lookahead.decay": "lookahead: the slow average's decay",
    "tuned_from": "written by `bench tune`: the search a tuned suite came from (storage, trials, space, machine "
                  "kind, code commit); absent in hand-written suites",
    "dataset.judged_on": "the split the target is judged on: test (default) or validation, where the test split "
                         "is dropped unread (bench tune's trials)",
    "recipe.eval_every": "reach mode: a deciding evaluation every this many epochs (0.25: four an epoch), inside "
                         "the clock; 0: at each epoch's end only",
    "recipe.time_limit_s": "seconds of the timed region after which the run stops and is judged where it stands "
                           "(bench tune prunes by it); absent: no limit",
}

_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "list": "list", "table": "table",
          "int_or_auto": 'integer or "auto"'}


@dataclass(frozen=True)
class KeyRow:
    """One key of the reference: dotted name, type, default (or 'required'), allowed values, meaning."""

    key: str
    type: str
    default: str
    allowed: str
    meaning: str


def _default(spec: Key) -> str:
    if spec.required:
        return "required"
    if spec.default is None:
        return "unset"
    return json.dumps(spec.default) if not isinstance(spec.default, str) else f'"{spec.default}"'


def key_rows() -> list[KeyRow]:
    """Every leaf key of the schema, in the schema's order."""
    rows = []
    for key in schema_keys():
        spec = schema_node(key)
        assert isinstance(spec, Key), key
        allowed = ", ".join(map(str, spec.choices)) if spec.choices else spec.expect
        rows.append(KeyRow(key, _TYPES[spec.kind], _default(spec), allowed, MEANINGS.get(key, "")))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def keys_markdown() -> str:
    """docs/suite-keys.md: the reference, one table per section of the suite file."""
    rows = key_rows()
    lines = ["# Suite keys", "",
             "<!-- generated by scripts/suite_keys_doc.py from bench/suites.py and bench/suite_keys.py; "
             "do not edit -->", "",
             f"Every key a suite file (TOML) may set: {len(rows)} in all. `bench show --keys` prints the same "
             "table, and `bench show SUITE` a suite with every default filled in. A key left out takes its "
             "default; `bench run SUITE --set KEY=VALUE` overrides one for a run (and is recorded).", ""]
    for top in ("top-level", "dataset", "model", "recipe"):
        chosen = [r for r in rows if (r.key.count(".") == 0) == (top == "top-level")
                  and (top == "top-level" or r.key.split(".")[0] == top)]
        title = "The suite itself" if top == "top-level" else f"[{top}]"
        lines += [f"## {title}", "", "| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        lines += [f"| `{r.key}` | {r.type} | {_cell(f'`{r.default}`' if r.default not in ('required', 'unset') else r.default)}"
                  f" | {_cell(r.allowed)} | {_cell(r.meaning)} |" for r in chosen]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def resolved_lines(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A resolved suite as (dotted key, value) pairs, leaves only, in the schema's order; a free
    table (model.args) is one value."""
    pairs = []
    for key, item in value.items():
        dotted = f"{prefix}{key}"
        node = schema_node(dotted)
        if isinstance(item, dict) and isinstance(node, dict):
            pairs += resolved_lines(item, dotted + ".")
        else:
            pairs.append((dotted, item))
    return pairs
