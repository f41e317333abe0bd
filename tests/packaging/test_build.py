"""The release artefacts: ``python -m build`` makes an sdist and a wheel that pass ``twine check``.

The wheel must ship the sandbox (users' own DAG tests import it) and ``py.typed``, and nothing
of the test suite. The build runs on a copy of the source tree (the files git tracks or would
track), so a stray local file cannot make it pass. The slower check, installing the wheel into
a fresh virtual environment together with Airflow, is ``scripts/check-package.sh``.
"""

from __future__ import annotations

import configparser
import email
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import tomllib

from airflow_provider_engagelab import __version__

REPO = Path(__file__).resolve().parents[2]
DIST_NAME = "airflow-provider-engagelab"
WHEEL_STEM = f"airflow_provider_engagelab-{__version__}"

for _tool in ("build", "twine"):
    if importlib.util.find_spec(_tool) is None:
        pytest.skip(f"the {_tool!r} package is missing: pip install build twine", allow_module_level=True)


def _source_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()
    return [p for p in out.split("\0") if p and (REPO / p).is_file()]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for rel in _source_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(src)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("*.whl")
    return wheel


def _sdist(dist: Path) -> Path:
    (sdist,) = dist.glob("*.tar.gz")
    return sdist


def test_build_makes_one_sdist_and_one_wheel(dist: Path) -> None:
    assert _wheel(dist).name == f"{WHEEL_STEM}-py3-none-any.whl"
    assert _sdist(dist).name == f"{WHEEL_STEM}.tar.gz"


def test_twine_check_passes(dist: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


#: The sandbox package, every module of it (``python -m ...testing.sandbox`` needs __main__).
SANDBOX_MODULES = ("__init__", "__main__", "admin", "api", "cli", "config", "data", "faults", "rows",
                   "server", "service", "tables")


def test_wheel_ships_the_sandbox_and_py_typed_but_no_tests(dist: Path) -> None:
    names = zipfile.ZipFile(_wheel(dist)).namelist()
    for required in (
        "airflow_provider_engagelab/py.typed",
        "airflow_provider_engagelab/testing/__init__.py",
        *(f"airflow_provider_engagelab/testing/sandbox/{module}.py" for module in SANDBOX_MODULES),
        "airflow_provider_engagelab/hooks/engagelab.py",
        "airflow_provider_engagelab/core/parsing.py",
    ):
        assert required in names, f"{required} missing from the wheel"
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"airflow_provider_engagelab", f"{WHEEL_STEM}.dist-info"}, top_level
    assert not [n for n in names if "/tests/" in n or n.startswith("tests/") or "conftest" in n]
    assert not [n for n in names if n.endswith((".pyc", ".orig", ".rej"))]


def test_wheel_metadata(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as whl:
        meta = email.message_from_bytes(whl.read(f"{WHEEL_STEM}.dist-info/METADATA"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(whl.read(f"{WHEEL_STEM}.dist-info/entry_points.txt").decode())
    assert meta["Name"] == DIST_NAME
    assert meta["Version"] == __version__
    assert "Framework :: Apache Airflow :: Provider" in meta.get_all("Classifier")
    requires = meta.get_all("Requires-Dist")
    assert any(r.replace(" ", "").startswith("apache-airflow>=3.0") for r in requires), requires
    assert not any(r.startswith(("pytest", "requests-mock", "ruff")) and "extra" not in r for r in requires)
    assert meta["Description-Content-Type"] == "text/markdown"
    assert dict(entry_points["apache_airflow_provider"]) == {
        "provider_info": "airflow_provider_engagelab:get_provider_info"
    }


def test_version_lives_in_one_place() -> None:
    """setup.cfg reads the version from the package; nothing else hard-codes it."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["metadata"]["version"].strip() == "attr: airflow_provider_engagelab.__version__"
    project = tomllib.loads((REPO / "pyproject.toml").read_text()).get("project", {})
    assert "version" not in project


def test_sdist_builds_the_same_package(dist: Path) -> None:
    with tarfile.open(_sdist(dist)) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for required in ("setup.cfg", "pyproject.toml", "README.md", "airflow_provider_engagelab/py.typed",
                     *(f"airflow_provider_engagelab/testing/sandbox/{m}.py" for m in SANDBOX_MODULES)):
        assert required in names, f"{required} missing from the sdist"
