"""One run: a seed of a suite trained on a prepared dataset, measured per the contract.

Order of a run (docs/design.md#3-the-measurement-contract):
  init (model, optimizer)  ->  data upload (loader) and the data-dependent init's image
  batch  ->  compile + warm-up: every first call the timed region will make (the training
  step on a real loader batch with random labels, the loader's plan, gathers and kernels,
  the whitening init's eigh, the lookahead update, the evaluation at its one shape with
  its TTA views), then the model and the loader's random state put back exactly  ->
  TIMED REGION: data-dependent init, every training step with its augmentation, and
  every evaluation that decides the verdict; evaluations made only for the curve are
  paused out (clock and GPU monitor alike) and timed apart.

Compilation is reused across the seeds of an invocation: torch.compile's cache keys on
the code and the shapes, not the model instance, so seed 0's compile_s holds the
compilation and later seeds' compile_s only their warm-up. Every run counts the compiles
that happened inside its timed region (recompiles_in_timed_region); it should be 0.

The package, in the order of a run:
  setup.py       device, model and masks, loaders (init and data upload)
  policy.py      the compute policy: explicit, cached, or decided by a trial (policy_cache.py)
  warmup.py      compile, warm-up, the CPU training-memory figure (outside the clock)
  loop.py        the timed region: steps, deciding evaluations, the stop rule
  hooks.py       the loop's other work: schedule, EMA, lookahead, pruning, curve evaluations
  driver.py      train_run: set-up -> warm-up -> loop -> record (bench.record.run)
  step.py, bptt.py            the training step and its BPTT form
  evaluation.py               top-1 accuracy with TTA, one input shape
  optim.py, schedules.py, ema.py, memory.py   optimizers, LR schedules, weight EMA, CPU peak memory
"""

from bench.train.driver import train_run
from bench.train.evaluation import evaluate, tta_logits
from bench.train.policy import Policy
from bench.train.setup import PreparedData, resolve_device
from bench.train.step import StepConfig, train_step

__all__ = ["Policy", "PreparedData", "StepConfig", "evaluate", "resolve_device", "train_run",
           "train_step", "tta_logits"]
