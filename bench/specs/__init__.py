"""`bench specs`: the network specification table.

For each network: input shape, classes, feature and decision layers, parameters,
forward GFLOPs and GMACs per image, and per device the inference (and, with
`train`, training) throughput at a fixed batch, plus the peak GPU memory on CUDA.

How the figures are defined (they go into the report's `settings` too):

* Layers are counted by `bench.models.zoo.layer_counts` (convs outside the head are
  feature layers; linear layers and head convs are decision layers).
* FLOPs are forward only, counted by torch's FlopCounterMode (a multiply-add is 2
  FLOPs; conv, linear and matmul ops -- norms, activations and pooling are not
  counted); MACs = FLOPs / 2. Training is given as 3x forward rather than counted:
  FlopCounterMode overcounts the backward of grouped (depthwise) convolutions.
* Timing follows timm's benchmark script: warm-up batches, synchronize (on CUDA),
  then each of N batches timed alone (synchronized before every clock reading); the
  figure is the median with the IQR, and images/s = batch / median.
* On out-of-memory the batch is halved and the device measured again; the row says so.

Figures a device cannot give are null with the reason, never 0.
"""

# The package (this docstring is `bench specs --help`'s description), top to bottom of its imports:
#
#   command  the `bench specs` command line                      -> report, views, files
#   views    table / Markdown / CSV / JSON faces                  -> files, measure (the busy rule)
#   report   which networks on which devices, the settings head   -> measure, files, models, env
#   measure  one network: figures, timing per device, OOM halving, the competing-load probe
#   files    the row and report types, atomic writing (read back by bench.reports.specs)
#
# This module imports nothing, so bench.reports reads spec files (bench.specs.files) without torch.
