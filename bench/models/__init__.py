"""Model registry: a name and keyword arguments in, an nn.Module out (bench.models.registry).

Models know nothing of suites or training. Each registers itself beside its definition with
`@register_model(name, input_shape=..., num_classes=...)`. Two optional hooks a trainer may
use: `data_init(images)` (data-dependent initialization, e.g. patch whitening) and a `whiten`
submodule whose bias trains only for the first epochs.
"""

from __future__ import annotations

# Importing a model module registers its models; this order is the registry's order, which
# is the spec table's default row order (the zoo first, then this project's training nets).
from bench.models import small, airbench, resnet9, sequence, zoo  # noqa: F401  (registration)
from bench.models.registry import ModelEntry, build_model, model_entry, model_names, register_model

__all__ = ["ModelEntry", "build_model", "model_entry", "model_names", "register_model"]
