"""The function a study cell runs as on a Ray worker (`bench sweep --executor ray`).

This module imports nothing but the standard library and Ray, and the cell reaches it as bytes:
the worker announces the attempt before anything imports torch (a second or more). Ray
deserializes a task's function and arguments before running it, so a CellJob argument (whose
module imports torch) would be unpickled, torch with it, before the announcement; a node lost
in that window left its retry counted as the first attempt (seen in tests/test_ray_cluster.py).
"""

from __future__ import annotations

import pickle
import socket
from typing import Any


def node_here() -> dict[str, Any]:
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
            "node_ip": ray.util.get_node_ip_address()}


def ray_cell(key: str, job_bytes: bytes, events: Any, threads: int | None) -> dict[str, Any]:
    """One attempt at a cell: announced on `events` as ("start", key, node) first, then the job
    (a pickled bench.studies.cell.CellJob) is unpickled and run; its record says where it ran."""
    node = node_here()
    events.put(("start", key, node))
    job = pickle.loads(job_bytes)  # imports bench.studies.cell, and torch with it
    from bench.progress import QueueReporter
    from bench.studies.cell import run_cell

    if threads:
        import torch

        torch.set_num_threads(threads)
    record = run_cell(job, QueueReporter(events.put, key))
    record["study"] = {**record["study"], "placement": {"executor": "ray", **node}}
    return record
