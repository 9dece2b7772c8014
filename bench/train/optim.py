"""Optimizers for the trainer: SGD / Adam / AdamW / Adadelta parameter groups, Muon for conv
filters, lookahead.

Every group carries a `name` and a `base_lr`: the trainer sets `lr = base_lr * schedule`
each step, and freezes the whitening bias by setting its lr to 0 after its epochs.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from bench.errors import BenchError

_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


# torch's optimizers take a rate or a decay as a float32 scalar (Adam divides the rate by its bias
# correction first): past float32's range that is an overflow error mid-step. The rates in force
# stop here (docs/limits.md), where the weights overflow to inf and the run ends as diverged.
RATE_CEILING = 1e30


def param_groups(model: nn.Module, recipe: dict, split_filters: bool = False) -> list[dict[str, Any]]:
    """Norm-layer parameters (lr scaled up, weight decay scaled down so the per-step decay
    stays the same), a whitening bias that trains only for the first epochs, conv filters
    (a group of their own when Muon takes them), and the rest."""
    lr, wd, scale = recipe["lr"], recipe["weight_decay"], recipe["norm_lr_scale"]
    norm_ids = {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)}
    whiten = getattr(model, "whiten", None)
    whiten_ids = {id(whiten.bias)} if isinstance(whiten, nn.Conv2d) and whiten.bias is not None else set()
    groups: dict[str, list[nn.Parameter]] = {"norm": [], "whiten_bias": [], "filters": [], "other": []}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in whiten_ids:
            key = "whiten_bias"
        elif id(p) in norm_ids:
            key = "norm"
        elif split_filters and p.ndim == 4:
            key = "filters"
        else:
            key = "other"
        groups[key].append(p)
    out = []
    for name, params in groups.items():
        if not params:
            continue
        if name == "filters":
            muon = recipe["muon"]
            out.append({"params": params, "name": name, "lr": muon["lr"], "base_lr": muon["lr"],
                        "weight_decay": min(muon["weight_decay"], RATE_CEILING)})
            continue
        group_lr = lr * scale if name == "norm" else lr
        group_wd = wd / scale if name == "norm" else wd
        out.append({"params": params, "name": name, "lr": group_lr, "base_lr": group_lr,
                    "weight_decay": min(group_wd, RATE_CEILING)})
    return out


def _sgd(groups: list[dict[str, Any]], recipe: dict, device_type: str) -> torch.optim.SGD:
    nesterov = recipe["nesterov"] and recipe["momentum"] > 0
    # One fused kernel for the whole step on CUDA; the foreach path elsewhere.
    fast = {"fused": True} if device_type == "cuda" else {"foreach": True}
    return torch.optim.SGD(groups, lr=recipe["lr"], momentum=recipe["momentum"], nesterov=nesterov, **fast)


def build_optimizer(model: nn.Module, recipe: dict) -> torch.optim.Optimizer | "Combined":
    device_type = next(model.parameters()).device.type
    kind = recipe["optimizer"]
    # torch's fused kernels where they exist (one kernel for the whole step on CUDA), the
    # foreach path elsewhere; Adadelta has no fused form.
    fast = {"fused": True} if device_type == "cuda" else {"foreach": True}
    if kind == "sgd":
        return _sgd(param_groups(model, recipe), recipe, device_type)
    if kind == "adam":
        # weight_decay is Adam's L2 term (added to the gradient), not AdamW's decoupled decay
        return torch.optim.Adam(param_groups(model, recipe), lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                                **fast)
    if kind == "adamw":
        return torch.optim.AdamW(param_groups(model, recipe), lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                                 **fast)
    if kind == "adadelta":
        return torch.optim.Adadelta(param_groups(model, recipe), lr=recipe["lr"],
                                    weight_decay=recipe["weight_decay"], foreach=True)
    if kind == "muon":
        if recipe["precision"] == "fp16":
            raise BenchError("recipe.optimizer muon with precision fp16 is not supported; use bf16")
        groups = param_groups(model, recipe, split_filters=True)
        filters = [g for g in groups if g["name"] == "filters"]
        rest = [g for g in groups if g["name"] != "filters"]
        muon = recipe["muon"]
        parts: list[torch.optim.Optimizer] = []
        if filters:
            parts.append(Muon(filters, lr=muon["lr"], momentum=muon["momentum"], nesterov=muon["nesterov"],
                              ns_steps=muon["ns_steps"]))
        if rest:
            parts.append(_sgd(rest, recipe, device_type))
        return Combined(parts)
    raise BenchError(f"recipe.optimizer {kind!r}: choose sgd, adam, adamw, adadelta or muon")


class Combined:
    """Several optimizers stepped together, with one list of param groups (the same dicts)."""

    def __init__(self, parts: Iterable[torch.optim.Optimizer]):
        self.parts = list(parts)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for part in self.parts for g in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()


def newton_schulz_orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """An approximate orthogonalization U V^T of a matrix, or of each matrix of a (B, m, n)
    stack, by a quintic Newton-Schulz iteration (coefficients of Jordan et al.'s Muon), in
    bf16 on CUDA, fp32 elsewhere."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    x = x / (torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True) + 1e-7)
    transposed = x.size(-2) > x.size(-1)
    if transposed:
        x = x.mT
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.mT if transposed else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum whose update is orthogonalized per filter bank (MomentUm Orthogonalized by
    Newton-Schulz): each conv weight (out, in, k, k) is treated as an out x (in*k*k) matrix.

    Filter banks of one shape are orthogonalized together, as one batched iteration: a
    network's few distinct shapes cost a few batched matmul chains per step instead of one
    chain per layer (ten small launches each), which is what bounds a GPU step of a small net."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            by_shape: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf.mul_(momentum).add_(p.grad)
                g = p.grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                by_shape.setdefault(tuple(p.shape), []).append((p, g))
            for shape, pairs in by_shape.items():
                params = [p for p, _ in pairs]
                matrices = torch.stack([g.reshape(shape[0], -1) for _, g in pairs])
                updates = newton_schulz_orthogonalize(matrices, group["ns_steps"])
                # keep the update's RMS comparable across shapes (tall matrices get larger steps)
                scale = max(1.0, matrices.size(1) / matrices.size(2)) ** 0.5
                if group["weight_decay"]:
                    torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
                torch._foreach_add_(params, [u.view(shape) for u in updates.unbind(0)], alpha=-lr * scale)


class Lookahead:
    """airbench's lookahead EMA: every k steps the slow copy moves toward the weights and the
    weights are reset to it; the pull strengthens as training ends (decay^k * progress^3).

    The model's floating-point tensors (parameters and statistics) are listed once: an update
    is two _foreach kernels over those lists, not a state_dict() walk and two launches a tensor."""

    def __init__(self, model: nn.Module, every: int, decay: float):
        self.every, self.decay = every, decay
        # state_dict() tensors share storage with the model's, and training updates them in place.
        # Pruning masks (torch.nn.utils.prune's `*_mask` buffers) are not weights: averaging them
        # would bring pruned weights back, so they are left out.
        self.fast = [v for k, v in model.state_dict().items() if v.is_floating_point() and not k.endswith("_mask")]
        self.slow = [v.detach().clone() for v in self.fast]

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        torch._foreach_lerp_(self.slow, self.fast, 1 - decay)
        torch._foreach_copy_(self.fast, self.slow)

    def maybe_update(self, model: nn.Module, step: int, total_steps: int) -> None:
        if step % self.every == 0:
            self.update(model, self.decay ** self.every * (step / total_steps) ** 3)


def minimize(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler, penalty=None) -> None:
    """One optimizer update on `loss` plus `penalty()` where it gives a term (the sparsity
    recipe's L1; None for none): gradients cleared, backward (through the GradScaler when fp16
    training has one), step. Every training step form (plain, BPTT) ends with this."""
    extra = penalty() if penalty is not None else None
    objective = loss if extra is None else loss + extra
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(objective).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        objective.backward()
        optimizer.step()
