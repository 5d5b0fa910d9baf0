#!/bin/sh
# The declared dependency floors are true: a virtual environment with every floor in
# pyproject.toml pinned exactly (`>=X` installed as `==X`) and repofeed itself installed without
# its dependencies runs the daemon's smoke tests (init, backfill, a daemon that takes in a
# commit and a worktree edit and stops on SIGTERM), and the complexity tests (tree-sitter 0.25
# bounds a parse another way than 0.26; the grammar wheels' node names change between versions). torch
# is no declared dependency and stays out.
set -eu
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${FLOORS_VENV:-.venv-floors}
"$python" -m venv --clear "$venv"
pins=$("$venv/bin/python" - <<'PY'
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["test"]
print(" ".join(d.replace(">=", "==") for d in deps))
PY
)
echo "floors: $pins"
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install --quiet $pins
"$venv/bin/python" -m pip install --quiet --no-deps .
"$venv/bin/python" -m pip check
# from the root: `repofeed` resolves to the installed copy (the source tree has no such directory)
"$venv/bin/python" -m pytest -q tests/test_floors_smoke.py tests/test_complexity.py
