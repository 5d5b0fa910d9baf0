"""The systemd side: the user unit `repofeed service` writes, and the notify protocol the
daemon speaks, over a real datagram socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import run_cli, wait_for
from repofeed.daemon.service import escape_path, instance_of


def _unit_dir(home: Path) -> Path:
    return home / ".config" / "systemd" / "user"


def test_install_writes_the_template_and_a_dropin_and_says_what_to_run(live_repo, isolated_home):
    out = run_cli("service", "install", str(live_repo.path)).stdout
    unit = instance_of(live_repo.path.resolve())
    template = _unit_dir(isolated_home) / "repofeed@.service"
    dropin = _unit_dir(isolated_home) / f"{unit}.d" / "repofeed.conf"
    text = template.read_text()
    for line in ("Type=notify", "Restart=on-failure", "WatchdogSec=", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ProtectSystem=strict"):
        assert line in text
    assert f'ExecStart="{sys.executable}" -m repofeed.daemon daemon "%f"' in text
    git_dir = live_repo.path.resolve() / ".git"
    assert f'"{git_dir / "repofeed"}"' in dropin.read_text()
    assert "ReadWritePaths=" in dropin.read_text()
    # no user manager in this sandbox: the commands are printed instead of run
    assert "systemctl --user daemon-reload" in out
    assert f"systemctl --user enable --now '{unit}'" in out
    assert "loginctl enable-linger" in out

    data = json.loads(run_cli("service", "status", str(live_repo.path), "--json").stdout)
    assert data["installed"] is True and data["unit"] == unit

    run_cli("service", "uninstall", str(live_repo.path))
    assert not template.exists() and not dropin.parent.exists()
    data = json.loads(run_cli("service", "status", str(live_repo.path), "--json").stdout)
    assert data["installed"] is False


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
def test_systemd_analyze_verifies_the_written_unit(live_repo, isolated_home, tmp_path):
    run_cli("service", "install", str(live_repo.path))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    unit = _unit_dir(isolated_home) / instance_of(live_repo.path.resolve())
    done = subprocess.run(["systemd-analyze", "verify", "--user", str(unit)],
                          capture_output=True, text=True,
                          env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", ["/home/ada/my repo", "/srv/naïve/.hidden/x-y", "/a_b/c:d"])
def test_instance_names_escape_paths_as_systemd_does(path):
    if shutil.which("systemd-escape") is None:
        pytest.skip("systemd-escape absent")
    expected = subprocess.run(["systemd-escape", "--path", path], capture_output=True,
                              text=True, check=True).stdout.strip()
    assert escape_path(path) == expected


class _Manager:
    """The manager's end of the notify protocol: a datagram socket that collects messages."""

    def __init__(self, address: str, bind_to: str):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def fields(self) -> list[str]:
        return [f for m in self.drain() for f in m.split("\n")]


@pytest.mark.parametrize("abstract", [False, True])
def test_the_daemon_speaks_the_notify_protocol(live_repo, tmp_path, abstract):
    if abstract:
        name = f"repofeed-test-{os.getpid()}-{time.monotonic_ns()}"
        manager = _Manager("@" + name, "\0" + name)
    else:
        path = str(tmp_path / "notify.sock")
        manager = _Manager(path, path)
    env = {**os.environ, "NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "300000"}
    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "repofeed.daemon", "daemon",
                             str(live_repo.path)], env=env, stderr=log,
                            stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: "READY=1" in manager.fields(), "READY=1", timeout=60)
        assert f"MAINPID={proc.pid}" in manager.fields()
        wait_for(lambda: any(f.startswith("STATUS=up to date") for f in manager.fields()),
                 "a status once caught up")
        seen = manager.fields().count("WATCHDOG=1")
        # pings every half WATCHDOG_USEC (0.15 s) while idle: a few in under a second
        wait_for(lambda: manager.fields().count("WATCHDOG=1") >= seen + 3,
                 "three more watchdog pings", timeout=5)
        live_repo.commit("While supervised", {"supervised.py": "S = 1\n"})
        head = live_repo.head()[:12]
        wait_for(lambda: f"STATUS=up to date at {head}; " in
                 " ".join(manager.fields()), "a status naming the new head")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "STOPPING=1" in manager.fields()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        manager.sock.close()


def test_logs_carry_syslog_priorities_under_journald(live_repo, tmp_path):
    log_path = tmp_path / "journal.log"
    with open(log_path, "wb") as log:
        st = os.fstat(log.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen([sys.executable, "-m", "repofeed.daemon", "daemon",
                                 str(live_repo.path)], env=env, stderr=log,
                                stdout=subprocess.DEVNULL)
        try:
            wait_for(lambda: b"start:" in log_path.read_bytes() or
                     b"up to date" in log_path.read_bytes() or
                     b"worktree" in log_path.read_bytes(), "the daemon's first lines")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = log_path.read_text().splitlines()
    assert lines and all(line.startswith(("<6>INFO ", "<4>WARNING ", "<7>DEBUG "))
                         for line in lines), lines


def _large_sources(files: int, size: int) -> dict[str, str]:
    """``files`` Python-like texts of about ``size`` bytes each (under max_file_bytes), every
    line different, so that each one costs SentencePiece real work."""
    out = {}
    for n in range(files):
        lines, total, k = [], 0, 0
        while total < size:
            line = f"def step_{n}_{k}(value, scale={k % 97}):\n    return value * scale + {n}\n"
            lines.append(line)
            total += len(line)
            k += 1
        out[f"big/part{n:03d}.py"] = "".join(lines)
    return out


@pytest.mark.slow
def test_the_watchdog_is_fed_during_a_large_commit(live_repo, tmp_path):
    """12 MB in one commit are seconds of work here (hundreds of MB are minutes anywhere):
    systemd must hear WATCHDOG=1 within every WATCHDOG_USEC meanwhile, or it kills the daemon
    and restarts it, which starts the same work again, for ever."""
    path = str(tmp_path / "notify.sock")
    manager = _Manager(path, path)
    usec = 1_000_000
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(usec)}
    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "repofeed.daemon", "daemon",
                             str(live_repo.path)], env=env, stderr=log,
                            stdout=subprocess.DEVNULL)
    received: list[tuple[float, list[str]]] = []  # (when, fields), stamped as they arrive
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                message = manager.sock.recv(4096).decode()
            except TimeoutError:
                continue
            received.append((time.monotonic(), message.split("\n")))

    receiver = threading.Thread(target=receive)
    receiver.start()
    try:
        wait_for(lambda: any(f.startswith("STATUS=up to date") for _t, m in received
                             for f in m), "the daemon to catch up", timeout=60)
        start = time.monotonic()
        # the watcher takes the files in as they are written, then the commit: both long
        live_repo.commit("A very large commit", _large_sources(100, 120_000))
        head = live_repo.head()[:12]
        wait_for(lambda: any(f.startswith(f"STATUS=up to date at {head}; ")
                             for _t, m in received for f in m),
                 "the daemon to take in the large commit", timeout=300)
        assert proc.poll() is None
    finally:
        done.set()
        receiver.join()
        proc.kill()
        proc.wait()
        log.close()
        manager.sock.close()
    pings = [start] + [t for t, m in received if t > start and "WATCHDOG=1" in m]
    gap = max(b - a for a, b in zip(pings, pings[1:]))
    assert gap < usec / 1e6, f"{gap:.2f} s without WATCHDOG=1 (WATCHDOG_USEC {usec})"
