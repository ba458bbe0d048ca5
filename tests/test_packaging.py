"""A non-editable install carries everything the code loads at run time: the wheel is built from the
tracked files, installed into a scratch venv, and every data file under orchestrator_data (JSON, YAML)
plus the migration revisions are loaded from the installed copy, not from this checkout."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from tests.conftest import PROJECT_ROOT

DATA_SUFFIXES = (".json", ".yaml", ".yml")


def _run(*command, cwd: Path = PROJECT_ROOT) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, command[:4]))} failed: {done.stderr[-2000:]}"
    return done.stdout


def _tracked_files() -> list[str]:
    listed = _run("git", "ls-files", "-co", "--exclude-standard").split()
    return [f for f in listed if (PROJECT_ROOT / f).is_file()]


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    for name in _tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((PROJECT_ROOT / name).read_bytes())
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
         source)
    [wheel] = (tmp_path / "dist").glob("orchestrator_data-*.whl")
    return wheel


def test_the_installed_wheel_loads_every_data_file_and_revision(tmp_path):
    expected = sorted(f.removeprefix("orchestrator_data/") for f in _tracked_files()
                      if f.startswith("orchestrator_data/") and f.endswith(DATA_SUFFIXES))
    wheel = _build_wheel(tmp_path)
    in_wheel = sorted(n.removeprefix("orchestrator_data/") for n in zipfile.ZipFile(wheel).namelist()
                      if n.startswith("orchestrator_data/") and n.endswith(DATA_SUFFIXES))
    assert in_wheel == expected

    # a scratch venv with the wheel and nothing of this checkout; its dependencies come from ours
    scratch = tmp_path / "venv"
    venv.create(scratch, with_pip=False)
    python = scratch / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel)
    probe = """
import json, sys
from importlib import resources
import yaml
import orchestrator_data
from orchestrator_data.postgres import migrator
root = resources.files("orchestrator_data")
loaded = {}
for name in json.loads(sys.argv[1]):
    text = (root / name).read_text(encoding="utf-8")
    loaded[name] = type(json.loads(text) if name.endswith(".json") else yaml.safe_load(text)).__name__
print(json.dumps({"package": orchestrator_data.__file__, "loaded": loaded,
                  "revisions": [s.revision for s in migrator._chain(None)]}))
"""
    report = json.loads(_run(python, "-c", probe, json.dumps(expected), cwd=tmp_path))
    assert report["package"].startswith(str(site)), "imported this checkout, not the installed wheel"
    assert sorted(report["loaded"]) == expected
    revisions = sorted(p.stem.split("_")[0] for p in
                       (PROJECT_ROOT / "orchestrator_data/postgres/migrations/versions").glob("[0-9]*.py"))
    assert report["revisions"] == revisions
