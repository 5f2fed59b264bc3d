"""Where rollouts and learners run: GPUs for Ray workers, one GPU per data-parallel rank."""

from __future__ import annotations

import pytest
import torch

from detente.config import ConfigError, RuntimeSection, load_config
from detente.rollout.replica import Replica, ReplicaSpec
from detente.rollout.workers import RolloutWorkers
from detente.train.backends import adapter_capacity, replica_device
from detente.train.distributed import DataParallel

VLLM = ["runtime.engine=vllm", "model.dtype=bfloat16", "device=auto"]  # tiny presets: cpu


def test_vllm_workers_without_gpus_are_a_config_error(tiny_overrides):
    with pytest.raises(ConfigError, match="gpus_per_worker=0 gives the vLLM rollout workers"):
        load_config("ipd-adalign-tiny", [*tiny_overrides, *VLLM, "runtime.workers=2"])
    config = load_config(
        "ipd-adalign-tiny",
        [*tiny_overrides, *VLLM, "runtime.workers=2", "runtime.gpus_per_worker=1"],
    )
    assert config.runtime.gpus_per_worker == 1


def test_vllm_in_float32_or_on_the_cpu_is_a_config_error(tiny_overrides):
    with pytest.raises(ConfigError, match="needs model.dtype=bfloat16"):
        load_config("ipd-adalign-tiny", [*tiny_overrides, "runtime.engine=vllm", "device=auto"])
    with pytest.raises(ConfigError, match="runs on a GPU"):
        load_config("ipd-adalign-tiny", [*tiny_overrides, *VLLM, "device=cpu"])


def test_replicas_run_on_the_learners_gpu_or_on_the_one_ray_gives():
    assert replica_device(torch.device("cuda", 3), workers=0) == "cuda:3"
    assert replica_device(torch.device("cuda", 3), workers=2) == "cuda"
    assert replica_device(torch.device("cuda"), workers=0) == "cuda"
    assert replica_device(torch.device("cpu"), workers=2) == "cpu"


def test_each_data_parallel_rank_computes_on_its_own_gpu():
    assert DataParallel(rank=3, size=4, local_rank=1).device("cuda") == "cuda:1"
    assert DataParallel(rank=1, size=2, local_rank=1).device("cpu") == "cpu"
    assert DataParallel().device("cuda") == "cuda"  # alone: as before


def test_gpu_workers_without_gpus_fail_before_ray_starts():
    spec = ReplicaSpec("hf", "tiny-test", "cuda", {}, None, None, 8, None)
    with pytest.raises(ValueError, match="gpus_per_worker=0 gives the rollout workers no GPU"):
        RolloutWorkers(spec, None, None, RuntimeSection(workers=2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_replica_meant_for_a_gpu_that_sees_none_fails_instead_of_using_the_cpu():
    spec = ReplicaSpec("hf", "tiny-test", "cuda", {}, None, None, 8, None)
    with pytest.raises(RuntimeError, match="sees no GPU"):
        Replica(spec)


def test_replicas_hold_the_live_adapter_an_opponent_and_the_resident_pool(tiny_overrides):
    pool = load_config(
        "ipd-adalign-tiny", [*tiny_overrides, "pool.enabled=true", "pool.resident=20"]
    )
    assert adapter_capacity(pool) == 22
    alone = load_config("ipd-adalign-tiny", [*tiny_overrides, "pool.enabled=false"])
    assert adapter_capacity(alone) == 8  # vLLM's max_loras
