"""On battery or not, from a fake /sys/class/power_supply."""

from __future__ import annotations

import pytest

from sprint_desktop.core.power import on_battery


def _supply(root, name, **files):
    folder = root / name
    folder.mkdir(parents=True)
    for key, value in files.items():
        (folder / key).write_text(value + "\n")


@pytest.mark.parametrize(
    ("supplies", "expected"),
    [
        ({}, False),  # a desktop: nothing to tell
        ({"AC": {"type": "Mains", "online": "1"}, "BAT0": {"type": "Battery", "status": "Charging"}}, False),
        (
            {"AC": {"type": "Mains", "online": "0"}, "BAT0": {"type": "Battery", "status": "Discharging"}},
            True,
        ),
        ({"BAT0": {"type": "Battery", "status": "Discharging"}}, True),
        ({"BAT0": {"type": "Battery", "status": "Full"}}, False),
        (
            {"AC": {"type": "Mains", "online": "1"}, "BAT0": {"type": "Battery", "status": "Discharging"}},
            False,
        ),
    ],
)
def test_on_battery_from_sysfs(tmp_path, supplies, expected):
    for name, files in supplies.items():
        _supply(tmp_path, name, **files)
    assert on_battery(tmp_path) is expected


def test_no_sysfs_means_plugged_in(tmp_path):
    assert on_battery(tmp_path / "missing") is False
