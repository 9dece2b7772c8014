"""A resolved suite's cross-key checks: what no single key's type or range can say (a BPTT step
longer than its window, a pruning table without an epoch, fp16 on a CPU-only suite...).
bench.suites runs them after resolving every key against its schema."""

from __future__ import annotations

import math
from typing import Any

from bench.errors import BenchError


def cross_checks(resolved: dict[str, Any], where: str) -> None:
    """Checks that span several keys of a resolved suite (each key alone already fits the schema);
    each problem is one BenchError line naming the file and the key."""
    recipe = resolved["recipe"]
    if resolved["dataset"].get("judged_on") == "validation" and not resolved["dataset"]["validation_size"]:
        raise BenchError(f"{where}: 'dataset.judged_on' \"validation\" needs a validation split; set "
                         "'dataset.validation_size' (e.g. 5000)")
    if resolved["dataset"]["name"] == "imagefolder" and not resolved["dataset"]["path"]:
        raise BenchError(f"{where}: dataset 'imagefolder' needs 'dataset.path' (a folder, .tar or .tar.xz)")
    if recipe["augment"]["alternating_flip"] and not recipe["augment"]["flip"]:
        raise BenchError(f"{where}: 'recipe.augment.alternating_flip' needs 'recipe.augment.flip = true'")
    if recipe["compile"] != "off" and recipe["warmup_steps"] < 2:
        # one warm-up step compiles; a second proves the compiled step is reused (no recompile
        # on the optimizer's first-step state, say) before the clock starts
        raise BenchError(f"{where}: 'recipe.warmup_steps' is {recipe['warmup_steps']}, but recipe.compile "
                         f"{recipe['compile']!r} needs at least 2 warm-up steps to keep compilation out of "
                         "the timed region; raise it or set recipe.compile = \"off\"")
    bptt = recipe["bptt"]
    if bptt["mode"] in ("truncated", "sliding", "shuffled") and bptt["length"] < 1:
        raise BenchError(f"{where}: 'recipe.bptt.length' must be at least 1 for recipe.bptt.mode "
                         f"{bptt['mode']!r} (the window length in sequence steps)")
    # every windowed mode: a step longer than the window never trains on the steps between windows
    if bptt["mode"] in ("sliding", "shuffled") and bptt["step"] > bptt["length"]:
        raise BenchError(f"{where}: 'recipe.bptt.step' {bptt['step']} is longer than 'recipe.bptt.length' "
                         f"{bptt['length']}: {bptt['mode']} windows would skip steps; make step <= length")
    ghost = resolved["model"]["args"].get("ghost_batch")
    if isinstance(ghost, int) and ghost > 0 and recipe["batch_size"] % ghost:
        raise BenchError(f"{where}: 'recipe.batch_size' {recipe['batch_size']} is not a multiple of "
                         f"'model.args.ghost_batch' {ghost}; ghost batch norm splits each batch into such groups")
    _check_sparsity(recipe["sparsity"], recipe["epochs"], where)
    if recipe["precision"] == "fp16" and resolved["devices"] == ["cpu"]:
        raise BenchError(f"{where}: 'recipe.precision' fp16 is for CUDA; use bf16 or auto on CPU")


def _check_sparsity(spec: dict[str, Any], epochs: float, where: str) -> None:
    """Cross-checks of a resolved `recipe.sparsity` table (bench.sparsity applies it); each problem is
    one BenchError line."""
    method, pruning = spec["method"], spec["threshold"] is not None or spec["target"] is not None
    key = "recipe.sparsity"
    if method == "none":
        set_keys = [k for k in ("threshold", "target") if spec[k] is not None]
        set_keys += ["l1"] if spec["l1"] else []
        set_keys += ["prune_epochs"] if spec["prune_epochs"] else []
        if set_keys:
            raise BenchError(f"{where}: '{key}.{set_keys[0]}' is set but '{key}.method' is \"none\"; "
                             "set the method to \"l1\" or \"magnitude\", or drop the key")
        return
    if method == "magnitude" and spec["l1"]:
        raise BenchError(f"{where}: '{key}.l1' is set but '{key}.method' is \"magnitude\"; use method \"l1\" "
                         "for an L1 penalty (it may prune too)")
    if method == "magnitude" and not pruning:
        raise BenchError(f"{where}: '{key}.method' \"magnitude\" needs '{key}.threshold' (on |w|) or "
                         f"'{key}.target' (the fraction of weights left active)")
    if spec["threshold"] is not None and spec["target"] is not None:
        raise BenchError(f"{where}: '{key}.threshold' and '{key}.target' are both set; prune by one of them")
    if pruning and not spec["prune_epochs"]:
        raise BenchError(f"{where}: '{key}.prune_epochs' is empty; name the epoch(s) after which to prune, "
                         "e.g. prune_epochs = [10]")
    if spec["prune_epochs"] and not pruning:
        raise BenchError(f"{where}: '{key}.prune_epochs' is set but neither '{key}.threshold' nor "
                         f"'{key}.target' says how much to prune")
    last = math.ceil(epochs)
    prune_epochs = spec["prune_epochs"]
    if any(not isinstance(e, int) or isinstance(e, bool) or not 1 <= e <= last for e in prune_epochs):
        raise BenchError(f"{where}: '{key}.prune_epochs' is {prune_epochs!r}; give whole epochs from 1 to {last} "
                         "(pruning happens after that epoch)")
    if list(prune_epochs) != sorted(set(prune_epochs)):
        raise BenchError(f"{where}: '{key}.prune_epochs' is {prune_epochs!r}; give each epoch once, increasing")
