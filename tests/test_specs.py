"""`bench specs`: FLOPs against hand counts, OOM halving, devices, the writer, the CLI face.

Kept small: only tiny nets run forwards, with one timed batch and no warm-up, on one thread.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import types

import pytest
import torch
from rich.console import Console
from torch import nn

from bench.formatting import si
from bench.specs import command as cli
from bench import load as load_module
from bench.specs import files, measure, views
from bench.specs import report as specs_report
from bench.specs.files import SpecRow
from bench.errors import BenchError
from bench.models import build_model
from bench.progress import NullReporter, RecordingReporter

QUICK = measure.SpecsOptions(repeats=1, warmup=0)
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quick_report(models, devices=("cpu",), train=False, **kw):
    return specs_report.run_specs(list(models), list(devices), kw.pop("batch", 2), kw.pop("input_shape", None),
                           amp=kw.pop("amp", False), channels_last=kw.pop("channels_last", False), train=train,
                           reporter=kw.pop("reporter", NullReporter()), repeats=1, warmup=0, **kw)


# ------------------------------------------------------------------ FLOPs against hand counts

def conv_macs(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, groups: int = 1) -> int:
    """Multiply-adds of a convolution: each output value sums (c_in / groups) * k * k products."""
    return c_out * h_out * w_out * (c_in // groups) * kernel * kernel


def linear_macs(n_in: int, n_out: int) -> int:
    return n_in * n_out


def test_plain_conv_net_flops_layers_and_params_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),             # 3x16x16 -> 8x16x16
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),  # -> 16x8x8
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    )
    figures = measure.network_figures(model, (3, 16, 16))
    macs = conv_macs(3, 8, 3, 16, 16) + conv_macs(8, 16, 3, 8, 8) + linear_macs(16, 10)
    assert figures["forward_flops"] == 2 * macs
    assert figures["forward_gmacs"] == pytest.approx(macs / 1e9)
    assert figures["forward_gflops"] == pytest.approx(2 * macs / 1e9)
    assert figures["train_gflops"] == pytest.approx(3 * 2 * macs / 1e9)
    assert (figures["feature_layers"], figures["decision_layers"]) == (2, 1)
    assert figures["params"] == (3 * 9 * 8 + 8) + (8 * 9 * 16 + 16) + (16 * 10 + 10)


def test_depthwise_separable_net_flops_by_hand():
    channels, side = 8, 12
    model = nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),  # depthwise
        nn.BatchNorm2d(channels), nn.ReLU(),
        nn.Conv2d(channels, 32, 1, bias=False),                                   # pointwise
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5),
    )
    figures = measure.network_figures(model, (channels, side, side))
    macs = (conv_macs(channels, channels, 3, side, side, groups=channels) + conv_macs(channels, 32, 1, side, side)
            + linear_macs(32, 5))
    assert figures["forward_flops"] == 2 * macs
    # and not the dense count a groups-blind counter would give
    assert figures["forward_flops"] != 2 * (conv_macs(channels, channels, 3, side, side)
                                            + conv_macs(channels, 32, 1, side, side) + linear_macs(32, 5))


def test_mlp_flops_by_hand():
    model = build_model("mlp", 10, (1, 28, 28), {"hidden": [512, 256]})
    figures = measure.network_figures(model, (1, 28, 28))
    macs = linear_macs(28 * 28, 512) + linear_macs(512, 256) + linear_macs(256, 10)
    assert figures["forward_flops"] == 2 * macs
    assert (figures["feature_layers"], figures["decision_layers"]) == (0, 3)
    assert figures["params"] == figures["trainable_params"] == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10


@pytest.mark.parametrize("name, gmacs", [("resnet18", 1.81), ("mobilenet_v2", 0.30)])
def test_zoo_macs_match_torchvision_table(name, gmacs):
    # torchvision's model table lists these (its "GFLOPS" column counts multiply-adds) at 3x224x224
    model = build_model(name, 1000, (3, 224, 224))
    assert measure.network_figures(model, (3, 224, 224))["forward_gmacs"] == pytest.approx(gmacs, abs=0.006)


def test_trainable_params_leave_out_frozen_weights():
    # airbench's whitening conv is frozen (set from data)
    row = quick_report(["airbench"]).rows[0]
    assert row.trainable_params < row.params


# ------------------------------------------------------------------ rows and devices

def test_row_has_the_defaults_for_zoo_and_own_nets():
    assert specs_report.network_defaults("resnet50") == (1000, (3, 224, 224))
    assert specs_report.network_defaults("inception_v3") == (1000, (3, 299, 299))
    assert specs_report.network_defaults("tiny") == (10, (3, 32, 32))
    assert specs_report.network_defaults("lenet5") == (10, (1, 32, 32))
    assert specs_report.network_defaults("mlp") == (10, (1, 28, 28))
    assert specs_report.network_defaults("airbench") == (10, (3, 32, 32))
    assert specs_report.default_models()[:11] == ["alexnet", "vgg16", "googlenet", "inception_v3", "resnet18", "resnet34",
                                           "resnet50", "densenet121", "squeezenet1_1", "mobilenet_v2", "tiny"]
    assert {"lenet5", "mlp", "resnet9", "airbench"} <= set(specs_report.default_models())


def test_cpu_report_is_json_and_has_timing_and_training():
    reporter = RecordingReporter()
    report = quick_report(["lenet5", "tiny"], train=True, reporter=reporter)
    json.dumps(report.to_json(), allow_nan=False)
    assert report.schema_version == 1 and report.kind == "specs"
    assert report.env["device"] == "cpu"
    assert report.settings["devices"]["cpu"] == {"measured": True, "batch": 2, "reason": None}
    lenet = report.rows[0]
    assert lenet.name == "lenet5" and lenet.input == [1, 32, 32] and lenet.num_classes == 10
    cpu = lenet.devices["cpu"]
    assert cpu["batch"] == 2 and cpu["note"] is None
    for phase in ("inference", "train"):
        assert cpu[phase]["images_per_s"] > 0 and cpu[phase]["timed_batches"] == 1 and cpu[phase]["iqr_ms"] == 0
    assert "memory_mb" not in cpu  # GPU memory belongs to CUDA entries only
    assert reporter.tasks[0]["completed"] == 2


def test_default_batch_is_stated(monkeypatch):
    report = specs_report.run_specs(["mlp"], ["cpu"], None, None, False, False, False, NullReporter(), repeats=1, warmup=0)
    assert report.rows[0].devices["cpu"]["batch"] == specs_report.DEFAULT_BATCH["cpu"] == 8
    assert "64 on CUDA, 8 on CPU" in report.settings["batch_rule"]


def test_threads_apply_to_the_run_only():
    before = torch.get_num_threads()
    report = quick_report(["mlp"], threads=before + 1)
    assert report.settings["torch_threads"] == report.env["cpu"]["torch_threads"] == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(BenchError, match="--threads"):
        quick_report(["mlp"], threads=0)


def test_amp_and_channels_last_run():
    report = quick_report(["tiny"], amp=True, channels_last=True, train=True)
    assert report.settings["amp_dtype"] == "bfloat16" and report.settings["channels_last"]
    assert report.rows[0].devices["cpu"]["train"]["images_per_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_all_without_cuda_gives_null_cuda_entries_with_reason():
    report = quick_report(["mlp"], devices=["all"], train=True)
    assert report.settings["devices"]["cuda"]["measured"] is False
    cuda = report.rows[0].devices["cuda"]
    assert cuda["inference"] is None and cuda["train"] is None and cuda["memory_mb"] is None
    assert "CUDA not available" in cuda["reason"]
    assert report.rows[0].devices["cpu"]["inference"] is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line_error():
    with pytest.raises(BenchError) as err:
        specs_report.resolve_devices(["cuda"])
    assert "CUDA is not available" in str(err.value) and "\n" not in str(err.value)


def test_unknown_device_and_model_and_bad_input_are_one_line_errors():
    with pytest.raises(BenchError, match="unknown device 'gpu'"):
        specs_report.resolve_devices(["gpu"])
    with pytest.raises(BenchError, match="did you mean resnet18"):
        cli.parse_models("resnt18")
    with pytest.raises(BenchError, match="empty name"):
        cli.parse_models("resnet18,,vgg16")
    for bad in ("3x224", "axbxc", "0x32x32", "3x32x32x1", ""):
        with pytest.raises(BenchError, match="--input"):
            cli.parse_input(bad)
    assert cli.parse_input("3x224x224") == (3, 224, 224)
    assert cli.parse_input(" 1 X 28 x 28 ") == (1, 28, 28)
    assert cli.parse_models("resnet18, vgg16") == ["resnet18", "vgg16"]


def test_input_a_network_cannot_take_is_a_one_line_error():
    with pytest.raises(BenchError, match=r"--input: airbench does not run on a 3x2x2 input"):
        quick_report(["airbench"], input_shape=(3, 2, 2))


def test_inception_training_loss_includes_the_aux_head():
    logits, aux = torch.randn(4, 10), torch.randn(4, 10)
    labels = torch.randint(0, 10, (4,))
    expected = (nn.functional.cross_entropy(logits, labels)
                + measure.AUX_LOSS_WEIGHT * nn.functional.cross_entropy(aux, labels))
    assert torch.allclose(measure._loss((logits, aux), labels), expected)


# ------------------------------------------------------------------ a busy machine is said

def test_competing_load_is_machine_busy_time_less_our_own(monkeypatch):
    readings = iter([(10.0, 1.0, 100.0), (14.0, 2.0, 102.0)])  # (machine busy s, own CPU s, clock s)
    current = {}

    def step():
        current.update(zip(("busy", "own", "clock"), next(readings)))
    monkeypatch.setattr(load_module.CompetingLoad, "_machine_busy_s", staticmethod(lambda: current["busy"]))
    monkeypatch.setattr(load_module.CompetingLoad, "_own_cpu_s", staticmethod(lambda: current["own"]))
    monkeypatch.setattr(load_module, "time", types.SimpleNamespace(perf_counter=lambda: current["clock"]))
    monkeypatch.setattr(load_module.os, "cpu_count", lambda: 2)
    step()
    with load_module.CompetingLoad() as load:
        step()
    # others kept the machine busy 4 - 1 = 3 CPU-seconds over 2 s on 2 cores
    assert load.share == pytest.approx(3 / (2 * 2))
    assert measure.busy_note(load.share) == "busy: 75% CPU elsewhere"
    assert measure.busy_note(0.05) is None and measure.busy_note(None) is None


def test_busy_machine_is_noted_in_the_row(small_report):
    row = SpecRow.from_json(json.loads(json.dumps(small_report.rows[0].to_json())))
    row.devices["cpu"]["competing_cpu_share"] = 0.5
    assert "cpu: busy: 50% CPU elsewhere" in views.row_notes(row)


# ------------------------------------------------------------------ out-of-memory halving

class OutOfMemoryAbove(nn.Module):
    """Raises CUDA's out-of-memory error for batches larger than `limit` (`train_limit` while training)."""

    def __init__(self, limit: int, train_limit: int | None = None, error=None):
        super().__init__()
        self.limit, self.train_limit = limit, train_limit if train_limit is not None else limit
        self.error = error or torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.seen: list[tuple[int, bool]] = []
        self.fc = nn.Linear(3 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.shape[0], self.training))
        if x.shape[0] > (self.train_limit if self.training else self.limit):
            raise self.error
        return self.fc(x.flatten(1))


def test_oom_halves_the_batch_and_says_so():
    entry = measure.measure_device(OutOfMemoryAbove(limit=64), (3, 4, 4), 10, CPU, 256, QUICK)
    assert entry["batch"] == 64
    assert entry["note"] == "OOM at 256 and 128, halved to 64"
    assert entry["inference"]["timed_batches"] == 1


@pytest.mark.parametrize("message", ["cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
                                     "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"])
def test_cudnn_and_cublas_allocation_failures_halve_like_out_of_memory(message):
    entry = measure.measure_device(OutOfMemoryAbove(limit=64, error=RuntimeError(message)), (3, 4, 4), 10, CPU, 128,
                                 QUICK)
    assert entry["batch"] == 64 and entry["note"] == "OOM at 128, halved to 64"


def test_other_runtime_errors_are_not_taken_for_out_of_memory():
    with pytest.raises(RuntimeError, match="illegal memory access"):
        measure.measure_device(OutOfMemoryAbove(limit=0, error=RuntimeError("CUDA error: an illegal memory access")),
                             (3, 4, 4), 10, CPU, 8, QUICK)


def test_peak_memory_is_reset_after_the_warm_up(monkeypatch):
    """cuDNN's algorithm search in the warm-up is not the network's memory: the peak counts the timed batches."""
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: events.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: (events.append("read"), 3 * 2**20)[1])
    options = measure.SpecsOptions(repeats=2, warmup=3)
    timing, peak = measure._time_batches(lambda: events.append("step"), torch.device("cuda"), 8, options)
    assert events == ["step"] * 3 + ["reset"] + ["step"] * 2 + ["read"]
    assert peak == 3.0 and timing["timed_batches"] == 2


def test_oom_while_training_halves_the_whole_measurement():
    options = measure.SpecsOptions(repeats=1, warmup=0, train=True)
    entry = measure.measure_device(OutOfMemoryAbove(limit=256, train_limit=32), (3, 4, 4), 10, CPU, 64, options)
    assert entry["batch"] == 32 and entry["note"] == "OOM at 64, halved to 32"
    assert entry["inference"] is not None and entry["train"] is not None


def test_oom_even_at_batch_one_is_a_null_entry_with_reason():
    options = measure.SpecsOptions(repeats=1, warmup=0, train=True)
    entry = measure.measure_device(OutOfMemoryAbove(limit=0), (3, 4, 4), 10, CPU, 4, options)
    assert entry["inference"] is None and entry["train"] is None and entry["batch"] is None
    assert entry["reason"] == "out of memory at every batch from 4 down to 1"


def test_oom_note_reaches_the_row_and_the_reporter(monkeypatch):
    monkeypatch.setattr(specs_report, "build_model", lambda name, classes, shape, where=None: OutOfMemoryAbove(limit=4))
    reporter = RecordingReporter()
    report = quick_report(["mlp"], batch=16, input_shape=(3, 4, 4), reporter=reporter)
    assert report.rows[0].devices["cpu"]["note"] == "OOM at 16 and 8, halved to 4"
    assert "mlp: OOM at 16 and 8, halved to 4" in reporter.notices
    assert "cpu: OOM at 16 and 8, halved to 4" in views.specs_markdown(report)


# ------------------------------------------------------------------ writer and tables

def write(report, folder):
    return files.write_specs(report, views.specs_markdown(report), folder)


@pytest.fixture(scope="module")
def small_report():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return quick_report(["lenet5", "mlp", "tiny"], devices=["all"], train=True)
    finally:
        torch.set_num_threads(threads)


def test_writer_never_overwrites(small_report, tmp_path):
    first_json, first_md = write(small_report, tmp_path)
    before = first_json.read_bytes(), first_md.read_bytes()
    second_json, second_md = write(small_report, tmp_path)  # same report, same timestamp
    assert second_json != first_json and second_md != first_md
    assert (first_json.read_bytes(), first_md.read_bytes()) == before
    assert second_json.stem == second_md.stem == first_json.stem + "-2"
    assert json.loads(second_json.read_text()) == small_report.to_json()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_written_file_reads_back_as_the_same_rows(small_report, tmp_path):
    # one row type: what `bench specs` writes is what `bench compare` reads, key for key
    from bench.reports.specs import read_spec_tables

    write(small_report, tmp_path)
    [table] = read_spec_tables(tmp_path)
    assert table.rows == small_report.rows
    throughputs = table.rows[0].throughputs()
    assert set(throughputs) == {"cpu inference", "cpu train"} and min(throughputs.values()) > 0  # cuda: not measured


def test_writer_gives_up_a_name_whose_markdown_exists(small_report, tmp_path):
    stray = tmp_path / f"{files.specs_stem(small_report)}.md"
    stray.write_text("someone else's notes")
    json_path, md_path = write(small_report, tmp_path)
    assert stray.read_text() == "someone else's notes"
    assert json_path.stem == md_path.stem == stray.stem + "-2"
    assert not (tmp_path / f"{stray.stem}.json").exists()


def test_file_name_says_machine_host_and_time(small_report):
    stem = files.specs_stem(small_report)
    assert stem.startswith("specs-") and stem.endswith(small_report.created.replace("-", "").replace(":", ""))
    assert files.slug(small_report.env["hostname"], 32) in stem
    assert files.slug("Intel(R) Xeon(R) Platinum 8488C") == "intel-r-xeon-r-platinum-8488c"


def test_markdown_has_every_row(small_report, tmp_path):
    _, md_path = write(small_report, tmp_path)
    lines = md_path.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| network |"))
    table = [line for line in lines[header + 2:] if line.startswith("| ")]
    assert [line.split(" | ")[0].lstrip("| ") for line in table] == ["lenet5", "mlp", "tiny"]
    columns = lines[header].count(" | ") + 1
    assert all(line.count(" | ") + 1 == columns for line in table)
    assert "cuda not measured (CUDA not available" in md_path.read_text()


def test_csv_and_rich_table_have_every_row(small_report):
    rows = list(csv.DictReader(io.StringIO(views.specs_csv(small_report))))
    assert [r["name"] for r in rows] == ["lenet5", "mlp", "tiny"]
    assert float(rows[0]["cpu_train_images_per_s"]) > 0 and rows[0]["cuda_infer_images_per_s"] == ""
    table = views.specs_table(small_report)
    assert table.row_count == 3
    # on a narrow screen every figure is still whole (they were cut with "…": "11,689,…")
    out = io.StringIO()
    Console(file=out, width=160, force_terminal=False).print(table)
    text = out.getvalue()
    assert "…" not in text and "61,706" in text.replace("\n", "")


def test_figures_read_the_one_way_numbers_read_everywhere(small_report):
    # bench.formatting.si: 3 significant figures, an SI prefix from a thousand up, never an exponent
    assert si(12345.6) == "12.3 k" and si(15.47) == "15.5" and si(0.000846) == "0.000846" and si(None) == "—"
    markdown = views.specs_markdown(small_report)
    lenet = next(line for line in markdown.splitlines() if line.startswith("| lenet5 |")).split(" | ")
    assert lenet[5] == "61,706"  # a specification's parameter count is written in full
    assert lenet[7] == si(small_report.rows[0].forward_gflops) == "0.000833"
    assert "e-0" not in markdown and "e+0" not in markdown


# ------------------------------------------------------------------ the command

def parse(argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("fmt", ["json", "csv", "md", "table"])
def test_command_prints_and_writes(fmt, tmp_path):
    out = io.StringIO()
    args = parse(["--models", "lenet5,mlp", "--device", "cpu", "--batch", "2", "--repeats", "1", "--warmup", "0",
                  "--format", fmt, "--out", str(tmp_path)])
    assert cli.command(args, Console(file=out, width=300)) == 0
    text = out.getvalue()
    if fmt == "json":
        assert [r["name"] for r in json.loads(text)["rows"]] == ["lenet5", "mlp"]
    elif fmt == "csv":
        assert [r["name"] for r in csv.DictReader(io.StringIO(text))] == ["lenet5", "mlp"]
    else:
        assert "lenet5" in text and "mlp" in text
    assert len(list(tmp_path.glob("specs-*.json"))) == len(list(tmp_path.glob("specs-*.md"))) == 1


def test_command_rejects_bad_input_before_measuring(tmp_path):
    for argv in (["--models", "alexnt"], ["--input", "3x224"], ["--batch", "0"]):
        with pytest.raises(BenchError):
            cli.command(parse([*argv, "--device", "cpu", "--out", str(tmp_path)]), Console(file=io.StringIO()))
    assert list(tmp_path.iterdir()) == []


def test_the_cpu_allocators_refusal_halves_like_out_of_memory():
    # torch's own message for an allocation the machine cannot give (`bench specs --batch 100000000`
    # on CPU was a traceback): a real refusal, not a made-up string
    try:
        torch.empty(2**50, dtype=torch.uint8)
    except RuntimeError as exc:
        refusal = exc
    else:
        pytest.skip("this machine allocated a petabyte")
    entry = measure.measure_device(OutOfMemoryAbove(limit=64, error=refusal), (3, 4, 4), 10, CPU, 128, QUICK)
    assert entry["batch"] == 64 and entry["note"] == "OOM at 128, halved to 64"
