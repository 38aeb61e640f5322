"""Is this computer running on its battery? (Instant-then-refine stays off on battery.)

Linux: ``/sys/class/power_supply`` (a mains supply online means no; a battery discharging means
yes); Windows: ``GetSystemPowerStatus``. Anywhere else, or when it cannot be told: False, so a
desktop without a battery, or an unknown system, behaves as plugged in. Never raises.
"""

from __future__ import annotations

import sys
from pathlib import Path

SYSFS = Path("/sys/class/power_supply")


def on_battery(sysfs: Path = SYSFS) -> bool:
    try:
        if sys.platform == "win32":
            return _windows_on_battery()
        return _linux_on_battery(sysfs)
    except Exception:  # noqa: BLE001 - cannot be told: behave as plugged in
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _linux_on_battery(sysfs: Path) -> bool:
    if not sysfs.is_dir():
        return False
    discharging = False
    for supply in sysfs.iterdir():
        kind = _read(supply / "type")
        if kind == "Mains" and _read(supply / "online") == "1":
            return False
        if kind == "Battery" and _read(supply / "status") == "Discharging":
            discharging = True
    return discharging


def _windows_on_battery() -> bool:  # pragma: no cover - Windows only
    import ctypes

    class Status(ctypes.Structure):
        _fields_ = [
            ("ACLineStatus", ctypes.c_ubyte),
            ("BatteryFlag", ctypes.c_ubyte),
            ("BatteryLifePercent", ctypes.c_ubyte),
            ("SystemStatusFlag", ctypes.c_ubyte),
            ("BatteryLifeTime", ctypes.c_ulong),
            ("BatteryFullLifeTime", ctypes.c_ulong),
        ]

    status = Status()
    if not ctypes.windll.kernel32.GetSystemPowerStatus(ctypes.byref(status)):  # type: ignore[attr-defined]
        return False
    return status.ACLineStatus == 0  # 0 offline, 1 online, 255 unknown
