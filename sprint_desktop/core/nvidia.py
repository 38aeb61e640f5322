"""Is there an NVIDIA GPU, without importing torch or onnxruntime (which may not be installed yet)?

Three sources, cheapest first: the driver's NVML library through ctypes, the ``nvidia-smi`` tool,
and (Linux) ``/proc/driver/nvidia``. Each answers with the first GPU's name, memory and the driver
version, or nothing; no source ever raises.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NvidiaGpu:
    name: str
    memory_mb: int | None
    driver: str
    source: str  # "nvml" | "nvidia-smi" | "/proc"

    def describe(self) -> str:
        memory = f", {self.memory_mb / 1024:.0f} GB" if self.memory_mb else ""
        return f"{self.name}{memory}, driver {self.driver}"


def driver_at_least(driver: str, minimum: str) -> bool:
    """Compare dotted driver versions numerically ("581.15" >= "580.65")."""

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", v)) or (0,)

    return key(driver) >= key(minimum)


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def _nvml_library() -> ctypes.CDLL | None:
    if sys.platform == "win32":
        candidates = [
            os.path.join(os.environ.get("SYSTEMROOT", r"C:\Windows"), "System32", "nvml.dll"),
            os.path.join(
                os.environ.get("PROGRAMFILES", r"C:\Program Files"), "NVIDIA Corporation", "NVSMI", "nvml.dll"
            ),
        ]
    else:
        candidates = ["libnvidia-ml.so.1"]
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def from_nvml() -> NvidiaGpu | None:
    lib = _nvml_library()
    if lib is None:
        return None
    try:
        if lib.nvmlInit_v2() != 0:
            return None
        try:
            count = ctypes.c_uint(0)
            if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0 or count.value == 0:
                return None
            driver = ctypes.create_string_buffer(96)
            lib.nvmlSystemGetDriverVersion(driver, 96)
            handle = ctypes.c_void_p()
            if lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(handle)) != 0:
                return None
            name = ctypes.create_string_buffer(96)
            lib.nvmlDeviceGetName(handle, name, 96)
            memory = _Memory()
            total = memory.total if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) == 0 else 0
            return NvidiaGpu(
                name.value.decode(errors="replace") or "NVIDIA GPU",
                total // 2**20 or None,
                driver.value.decode(errors="replace") or "unknown",
                "nvml",
            )
        finally:
            lib.nvmlShutdown()
    except (AttributeError, OSError):  # an old or broken driver library
        return None


def parse_nvidia_smi(output: str) -> NvidiaGpu | None:
    """The first line of ``nvidia-smi --query-gpu=name,memory.total,driver_version
    --format=csv,noheader,nounits``, e.g. ``NVIDIA GeForce RTX 4090, 24564, 581.15``."""
    for line in output.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 3 and fields[0]:
            memory = int(fields[1]) if fields[1].isdigit() else None
            return NvidiaGpu(fields[0], memory, fields[2], "nvidia-smi")
    return None


def from_nvidia_smi(timeout: float = 10.0) -> NvidiaGpu | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # no console flash on Windows
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(proc.stdout) if proc.returncode == 0 else None


def from_proc(root: Path = Path("/proc/driver/nvidia")) -> NvidiaGpu | None:
    """Linux: the kernel module's version file and the first GPU's information file."""
    try:
        version = (root / "version").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", version)
    driver = m.group(1) if m else "unknown"
    name = None
    for info in sorted(root.glob("gpus/*/information")):
        try:
            found = re.search(r"^Model:\s*(.+)$", info.read_text(errors="replace"), re.MULTILINE)
        except OSError:
            continue
        if found:
            name = found.group(1).strip()
            break
    if name is None:
        return None
    return NvidiaGpu(name, None, driver, "/proc")


def detect_nvidia_gpu() -> NvidiaGpu | None:
    """The first NVIDIA GPU found by NVML, nvidia-smi or /proc, or None."""
    return from_nvml() or from_nvidia_smi() or (from_proc() if sys.platform.startswith("linux") else None)
