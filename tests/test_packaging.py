"""The distribution installs under one namespace: no generic top-level module."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_wheel_installs_only_under_repofeed(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(PROJECT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wheel = next(tmp_path.glob("repofeed-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"repofeed", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    for room in ("daemon", "hooks", "store"):
        assert f"repofeed/{room}/__init__.py" in names
    assert "repofeed/store/datasets.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "repofeed = repofeed.daemon.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
