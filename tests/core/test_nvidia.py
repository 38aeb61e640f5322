"""NVIDIA GPU detection without torch: nvidia-smi (a stand-in script on PATH), /proc, versions."""

from __future__ import annotations

import os
import sys

import pytest

from sprint_desktop.core import nvidia


def test_nvidia_smi_output_is_parsed():
    gpu = nvidia.parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564, 581.15\nNVIDIA RTX A2000, 6138, 581.15\n")
    assert gpu == nvidia.NvidiaGpu("NVIDIA GeForce RTX 4090", 24564, "581.15", "nvidia-smi")
    assert "24 GB" in gpu.describe()
    assert nvidia.parse_nvidia_smi("") is None


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in is a shell script")
def test_nvidia_smi_on_path_is_run(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "NVIDIA GeForce RTX 3060, 12288, 575.57.08"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    gpu = nvidia.from_nvidia_smi()
    assert gpu is not None and gpu.name == "NVIDIA GeForce RTX 3060" and gpu.driver == "575.57.08"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert nvidia.from_nvidia_smi() is None


def test_proc_driver_files_are_read(tmp_path):
    (tmp_path / "gpus" / "0000:01:00.0").mkdir(parents=True)
    (tmp_path / "version").write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder)\n"
    )
    (tmp_path / "gpus" / "0000:01:00.0" / "information").write_text(
        "Model: \t\t NVIDIA GeForce RTX 4070\nIRQ:   \t\t 150\n"
    )
    gpu = nvidia.from_proc(tmp_path)
    assert gpu == nvidia.NvidiaGpu("NVIDIA GeForce RTX 4070", None, "580.65.06", "/proc")
    assert nvidia.from_proc(tmp_path / "absent") is None


def test_driver_versions_compare_numerically():
    assert nvidia.driver_at_least("581.15", "580.65")
    assert nvidia.driver_at_least("580.65.06", "580.65")
    assert not nvidia.driver_at_least("575.57.08", "580.65")
    assert not nvidia.driver_at_least("99.1", "580")


def test_detection_never_raises():
    gpu = nvidia.detect_nvidia_gpu()
    assert gpu is None or gpu.name
