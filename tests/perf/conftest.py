"""pytest-benchmark set-up: the torch build and accelerator go into machine_info, so a saved
benchmark says what it ran on."""

import torch


def pytest_benchmark_update_machine_info(config, machine_info):
    from bench.env import fingerprint

    env = fingerprint()
    machine_info["torch"] = env["torch"]
    machine_info["cuda"] = env["cuda"]
    machine_info["gpu"] = env["gpu"]
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["fast_bf16"] = env["cpu"]["fast_bf16"]
