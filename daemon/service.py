"""``repofeed service install|uninstall|status``: the daemon as a systemd user service.

The template ``repofeed@.service`` (package data from ``systemd/``, with this interpreter's
absolute path filled in) goes to ``$XDG_CONFIG_HOME/systemd/user/`` (default
``~/.config/systemd/user/``); each repository is an instance named after its path, as
``systemd-escape --path`` writes it, with a drop-in that lists the directories it writes
(``ProtectSystem=strict`` makes everything else read-only). Where a user manager runs,
``daemon-reload`` and ``enable --now`` follow; elsewhere the commands are printed.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from repofeed.store.errors import RepoError
from repofeed.store.locate import open_repository, repofeed_dir, store_dir_of

TEMPLATE = "repofeed@.service"
DROPIN = "repofeed.conf"


def unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "systemd" / "user"


def escape_path(path: str) -> str:
    """``systemd-escape --path``: "/" becomes "-", other bytes but [A-Za-z0-9:_.] are
    ``\\xNN``, and a leading "." is escaped too."""
    trimmed = path.strip("/") or "-"
    if trimmed == "-":
        return "-"
    out = []
    for n, byte in enumerate(os.fsencode(trimmed)):
        char = chr(byte)
        if char == "/":
            out.append("-")
        elif (char.isascii() and (char.isalnum() or char in ":_.")) and \
                not (n == 0 and char == "."):
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def instance_of(root: Path) -> str:
    return f"repofeed@{escape_path(str(root))}.service"


def render_template(python: str) -> str:
    text = resources.files("repofeed.systemd").joinpath("repofeed@.service.in").read_text(
        "utf-8")
    return text.replace("@PYTHON@", python)


def render_dropin(writable: list[Path]) -> str:
    paths = " ".join(f'"{p}"' for p in dict.fromkeys(writable))
    return ("# Written by `repofeed service install`: what this instance writes.\n"
            f"[Service]\nReadWritePaths={paths}\n")


@dataclass
class ServiceReport:
    unit: str
    files: list[Path] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)       # commands run, and what they said
    todo: list[str] = field(default_factory=list)      # commands the user should run


def _repo_root(repo_path: str | Path | None) -> tuple[Path, list[Path]]:
    repo = open_repository(repo_path)
    if not repo.workdir:
        raise RepoError(f"{repo.path} is a bare repository: a service follows a worktree.")
    root = Path(repo.workdir).resolve()
    return root, [repofeed_dir(repo), store_dir_of(repo).resolve()]


def user_manager_running() -> bool:
    """Whether ``systemctl --user`` can reach a user manager here."""
    if shutil.which("systemctl") is None:
        return False
    done = subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True,
                          text=True, timeout=30)
    return done.returncode == 0


def _systemctl(*args: str) -> str:
    done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True,
                          timeout=60)
    said = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise RepoError(f"`systemctl --user {' '.join(args)}` failed: {said}")
    return f"systemctl --user {' '.join(args)}" + (f": {said}" if said else "")


def _linger_hint() -> str:
    return f"loginctl enable-linger {getpass.getuser()}   # to start it at boot, before login"


def install(repo_path: str | Path | None, *, python: str | None = None,
            manager: bool | None = None) -> ServiceReport:
    root, writable = _repo_root(repo_path)
    for path in writable:
        path.mkdir(parents=True, exist_ok=True)  # ReadWritePaths= must exist
    report = ServiceReport(instance_of(root))
    directory = unit_dir()
    directory.mkdir(parents=True, exist_ok=True)
    template = directory / TEMPLATE
    template.write_text(render_template(python or sys.executable), "utf-8")
    dropin_dir = directory / f"{report.unit}.d"
    dropin_dir.mkdir(exist_ok=True)
    (dropin_dir / DROPIN).write_text(render_dropin(writable), "utf-8")
    report.files = [template, dropin_dir / DROPIN]
    if manager is None:
        manager = user_manager_running()
    if manager:
        report.ran.append(_systemctl("daemon-reload"))
        report.ran.append(_systemctl("enable", "--now", report.unit))
    else:
        report.todo = ["systemctl --user daemon-reload",
                       f"systemctl --user enable --now '{report.unit}'"]
    report.todo.append(_linger_hint())
    return report


def uninstall(repo_path: str | Path | None, *, manager: bool | None = None) -> ServiceReport:
    root, _writable = _repo_root(repo_path)
    report = ServiceReport(instance_of(root))
    directory = unit_dir()
    if manager is None:
        manager = user_manager_running()
    if manager:
        report.ran.append(_systemctl("disable", "--now", report.unit))
    else:
        report.todo.append(f"systemctl --user disable --now '{report.unit}'   # if it runs")
    dropin_dir = directory / f"{report.unit}.d"
    if (dropin_dir / DROPIN).exists():
        (dropin_dir / DROPIN).unlink()
        report.files.append(dropin_dir / DROPIN)
    if dropin_dir.is_dir() and not any(dropin_dir.iterdir()):
        dropin_dir.rmdir()
    others = [p for p in directory.glob("repofeed@*.service.d") if p.is_dir()]
    template = directory / TEMPLATE
    if not others and template.exists():  # the last repository: the template goes too
        template.unlink()
        report.files.append(template)
    if manager:
        report.ran.append(_systemctl("daemon-reload"))
    return report


def status(repo_path: str | Path | None, *, manager: bool | None = None) -> dict[str, object]:
    root, _writable = _repo_root(repo_path)
    unit = instance_of(root)
    directory = unit_dir()
    out: dict[str, object] = {
        "unit": unit,
        "template": str(directory / TEMPLATE),
        "installed": (directory / TEMPLATE).exists()
        and (directory / f"{unit}.d" / DROPIN).exists(),
        "manager": manager if manager is not None else user_manager_running(),
    }
    if out["manager"]:
        done = subprocess.run(["systemctl", "--user", "show", unit, "--property",
                               "ActiveState,SubState,MainPID,StatusText,UnitFileState"],
                              capture_output=True, text=True, timeout=30)
        for line in done.stdout.splitlines():
            key, _, value = line.partition("=")
            out[key] = value
    return out
