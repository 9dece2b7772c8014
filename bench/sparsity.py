"""Sparse training (`recipe.sparsity`): an L1 penalty, magnitude pruning with retraining, and the
active-parameter figures every run reports.

Methods:
  none       dense training.
  l1         coefficient x sum |w| over the weights of conv and linear layers is added to the
             loss (L2 weight decay stays as the recipe sets it); a coefficient of 0 is the
             reference point of an L1 sweep (the same pruning, no penalty). Plain SGD on an L1 term makes
             weights small, not exactly zero, so an l1 recipe may also prune (a threshold or a
             target at given epochs, e.g. after the last one) to count what it made small.
  magnitude  train dense, then at the prune epoch(s) zero the smallest weights: every weight with
             |w| below `threshold`, or exactly enough of them to leave the `target` fraction of
             the prunable weights active, over all layers at once (`scope = "global"`) or in each
             layer alike (`scope = "layer"`); the epochs after the first pruning retrain at the
             learning rate times `retrain_lr_factor` (Deep Compression). Several prune epochs
             prune gradually: the k-th of n leaves 1 - (1 - target)(1 - (1 - k/n)^3) active
             (Zhu & Gupta's cubic schedule), so the last one lands on the target.

Masks are torch.nn.utils.prune's: weight = weight_orig * weight_mask, recomputed by prune's
forward pre-hook, and prune's methods choose what to prune. A pruning recipe reparametrizes its
layers with all-ones masks before the warm-up and compilation (prune.identity), and every later
pruning writes its new mask into that same mask tensor, under that same hook. So the graph compiled in the warm-up already multiplies by the mask (a hook
added mid-run could be missed by a compiled graph: Dynamo does not guard on module hooks by
default), no tensor that the optimizer, its momentum, the warm-up's saved state or Lookahead's
cached lists hold is ever replaced, and a pruned weight stays zero whatever the optimizer does to
weight_orig: its gradient is masked, and whatever momentum, weight decay or lookahead write into
weight_orig is multiplied by zero before it reaches the network. After training the masks are
made permanent (prune.remove) before the parameters are counted.

Counts: `params` are all parameters, `active_params` those that are nonzero (through the mask
while the masks are on), `prunable_*` the conv and linear weights that a target refers to.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.utils import prune

_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """Conv and linear layers whose weight trains. A frozen weight (airbench's data-set whitening
    filters) is set from the data, not learned: it is neither penalized nor pruned."""
    out = []
    for module in model.modules():
        if isinstance(module, _PRUNABLE):
            weight = getattr(module, "weight_orig", None)
            if weight is None:
                weight = module.weight
            if weight.requires_grad:
                out.append(module)
    return out


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the layer computes with: weight_orig * weight_mask while a mask is on.
    Computed here, not read from `module.weight`, which prune's hook sets only on a forward."""
    if prune.is_pruned(module) and hasattr(module, "weight_mask"):
        return module.weight_orig * module.weight_mask
    return module.weight


def effective_parameters(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter as the network uses it: masked weights in place of their `_orig`."""
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if name.endswith("_orig") and hasattr(module, name[:-5] + "_mask"):
                yield full[:-5], param.detach() * getattr(module, name[:-5] + "_mask")
            else:
                yield full, param.detach()


@torch.no_grad()
def parameter_counts(model: nn.Module) -> dict[str, Any]:
    """Total, nonzero ("active") and active fraction, over all parameters and over the prunable
    weights; one host sync."""
    params = [t for _, t in effective_parameters(model)]
    prunable = [effective_weight(m).detach() for m in prunable_layers(model)]
    nonzero = torch.stack([torch.count_nonzero(t) for t in params + prunable]).tolist()
    total = sum(t.numel() for t in params)
    total_prunable = sum(t.numel() for t in prunable)
    active, active_prunable = sum(nonzero[:len(params)]), sum(nonzero[len(params):])
    return {"params": total, "active_params": active, "active_fraction": active / total if total else None,
            "prunable_params": total_prunable, "prunable_active_params": active_prunable,
            "prunable_active_fraction": active_prunable / total_prunable if total_prunable else None}


def gradual_active_fractions(target: float, prunings: int) -> list[float]:
    """The active fraction after each of n prunings: cubic in the pruning's index, ending on target."""
    return [1 - (1 - target) * (1 - (1 - k / prunings) ** 3) for k in range(1, prunings + 1)]


@torch.no_grad()
def active_count(model: nn.Module) -> torch.Tensor:
    """Nonzero parameters now, as a tensor on the model's device: no host sync, so the per-epoch
    trace costs a few small kernels inside the clock and is read after the timed region."""
    return torch.stack([torch.count_nonzero(t) for _, t in effective_parameters(model)]).sum()


@torch.no_grad()
def layer_nonzeros(model: nn.Module) -> dict[str, list[int]]:
    """[weights, nonzero weights] of every conv and linear layer, by module name."""
    return {name: [m.weight.numel(), int(torch.count_nonzero(effective_weight(m)))]
            for name, m in model.named_modules() if isinstance(m, _PRUNABLE)}


@torch.no_grad()
def output_positions(model: nn.Module, in_shape: tuple[int, int, int]) -> dict[str, int]:
    """How many times each conv and linear layer applies each of its weights to one image (output
    pixels for a conv, 1 for a linear layer on a vector), from one forward pass of a batch of one."""
    positions: dict[str, int] = {}
    names = {m: name for name, m in model.named_modules() if isinstance(m, _PRUNABLE)}

    def record(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        per_channel = output.numel() // (module.out_features if isinstance(module, nn.Linear) else output.shape[1])
        positions[names[module]] = per_channel

    handles = [m.register_forward_hook(record) for m in names]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *in_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return positions


def active_flops_per_image(dense_flops: int, positions: dict[str, int], nonzeros: dict[str, list[int]]) -> int:
    """The dense forward FLOPs less 2 FLOPs (one multiply-add) for every zero weight at every
    position it would have been applied at: what the active weights imply, for reference. No
    kernel here skips zeros, so this is not a time the hardware would reach."""
    return dense_flops - sum(2 * (total - nonzero) * positions.get(name, 0)
                             for name, (total, nonzero) in nonzeros.items())


class Sparsifier:
    """The run's sparsity recipe applied to one model: the L1 penalty, the masks, the prunings."""

    def __init__(self, model: nn.Module, spec: dict[str, Any]):
        self.model, self.spec = model, spec
        self.method = spec["method"]
        self.l1 = spec["l1"] if self.method == "l1" else 0.0
        self.prunes = self.method != "none" and bool(spec["prune_epochs"])
        self.prune_epochs = sorted(int(e) for e in spec["prune_epochs"]) if self.prunes else []
        self.layers = prunable_layers(model)
        self.pruned_at: list[int] = []

    @property
    def active(self) -> bool:
        """The recipe can change which weights are nonzero (a dense one cannot: it has no trace)."""
        return self.method != "none"

    def attach(self) -> None:
        """All-ones masks on every prunable layer, before compiling and warming up (see the module
        doc); a recipe that never prunes keeps plain weights."""
        if self.prunes:
            for module in self.layers:
                prune.identity(module, "weight")

    def penalty(self) -> torch.Tensor | None:
        """coefficient x sum |w| over the conv and linear weights the network uses, or None."""
        if not self.l1:
            return None
        return self.l1 * torch.stack([effective_weight(m).abs().sum() for m in self.layers]).sum()

    def lr_factor(self) -> float:
        """The retraining phase (after the first pruning) trains at the learning rate times this."""
        return self.spec["retrain_lr_factor"] if self.pruned_at else 1.0

    @property
    def done(self) -> bool:
        """Every pruning of the recipe has happened: only now does an evaluation judge its network."""
        return len(self.pruned_at) == len(self.prune_epochs)

    def maybe_prune(self, epochs_done: int) -> bool:
        """Prunes when `epochs_done` is a prune epoch; True when it did."""
        if epochs_done not in self.prune_epochs or epochs_done in self.pruned_at:
            return False
        index = self.prune_epochs.index(epochs_done)
        self.prune(None if self.spec["target"] is None
                   else gradual_active_fractions(self.spec["target"], len(self.prune_epochs))[index])
        self.pruned_at.append(epochs_done)
        return True

    @torch.no_grad()
    def prune(self, active_fraction: float | None) -> None:
        """One pruning: below the threshold (active_fraction None), or down to active_fraction of the
        prunable weights, globally or per layer.

        prune's own methods choose the weights (global_unstructured, l1_unstructured), each on a
        stand-in for a layer that holds the layer's current mask and, as its weight, the magnitudes
        the layer computes with, flat: prune flattens with view(-1), which a channels-last filter
        does not allow. Already pruned weights stay pruned (prune chooses among the unpruned ones
        only). The chosen masks are then written into the layers' own mask tensors (see the module
        doc for why those tensors are never replaced)."""
        stand_ins = {}
        for m in self.layers:
            stand = nn.Module()
            stand.weight = nn.Parameter(effective_weight(m).abs().reshape(-1), requires_grad=False)
            prune.custom_from_mask(stand, "weight", m.weight_mask.reshape(-1))
            stand_ins[m] = stand
        if active_fraction is None:
            threshold = self.spec["threshold"]
            for stand in stand_ins.values():
                # how many of this layer's active weights fall below the threshold
                below = int(((stand.weight_orig < threshold) & (stand.weight_mask != 0)).sum())
                prune.l1_unstructured(stand, "weight", amount=below)
        elif self.spec["scope"] == "global":
            total = sum(stand.weight_orig.numel() for stand in stand_ins.values())
            still = sum(int(stand.weight_mask.count_nonzero()) for stand in stand_ins.values())
            prune.global_unstructured([(stand, "weight") for stand in stand_ins.values()], prune.L1Unstructured,
                                      amount=max(still - round(active_fraction * total), 0))
        else:
            for stand in stand_ins.values():
                still = int(stand.weight_mask.count_nonzero())
                keep = round(active_fraction * stand.weight_orig.numel())
                prune.l1_unstructured(stand, "weight", amount=max(still - keep, 0))
        for m, stand in stand_ins.items():
            m.weight_mask.copy_(stand.weight_mask.view_as(m.weight_mask))

    def finalize(self) -> None:
        """Makes the masks permanent: each weight becomes a plain parameter with its zeros."""
        for module in self.layers:
            if prune.is_pruned(module) and hasattr(module, "weight_mask"):
                prune.remove(module, "weight")
