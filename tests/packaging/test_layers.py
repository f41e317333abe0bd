"""The layering docs/architecture.md states, enforced.

* the pure core (``core/``) and the file sinks import nothing from Airflow: they import and run
  in a process where ``airflow`` cannot be imported at all;
* ``operators/``, ``transfers/`` and ``sensors/`` import no file-system back end, Arrow or
  database driver at module level (DAG files import them; those load when a task runs).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_engagelab"

#: Modules of the file, Delta and SQL sinks (the SQL sink gets its DB-API connection from the
#: transfer's common.sql hook, handed in: it imports no Airflow itself).
FILE_SINKS = ["base", "delta", "files", "lease", "partition", "rewrite", "staging", "store", "xcom",
              "sql", "sql_load", "sql_schema"]

#: What a DAG file must not load through our operators (modules loaded when a task runs).
HEAVY = ("fsspec", "s3fs", "gcsfs", "adlfs", "pyarrow", "deltalake", "polars", "duckdb", "psycopg2",
         "psycopg", "sqlalchemy", "aiohttp", "requests", "boto3", "botocore", "openlineage")


def module_level_imports(path: Path) -> set[str]:
    """Top-level module names imported outside functions (``if TYPE_CHECKING`` excluded)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []:
            if isinstance(sub, ast.Import):
                names |= {a.name.split(".")[0] for a in sub.names}
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                names.add(sub.module.split(".")[0])
    return names


def core_and_sink_modules() -> list[str]:
    core = sorted(p.stem for p in (PACKAGE / "core").glob("*.py") if p.stem != "__init__")
    return [f"airflow_provider_engagelab.core.{m}" for m in core] + [
        f"airflow_provider_engagelab.sinks.{m}" for m in FILE_SINKS
    ]


@pytest.mark.parametrize("module", core_and_sink_modules())
def test_the_core_and_the_file_sinks_never_import_airflow(module):
    path = PACKAGE / Path(*module.split(".")[1:]).with_suffix(".py")
    assert "airflow" not in module_level_imports(path)


def test_the_core_and_the_file_sinks_run_without_airflow(tmp_path):
    script = (
        "import sys; sys.modules['airflow'] = None\n"  # any `import airflow...` now fails
        + "".join(f"import {m}\n" for m in core_and_sink_modules())
        + "from airflow_provider_engagelab.sinks.store import LocalStore\n"
        + f"s = LocalStore({str(tmp_path)!r}); s.put_bytes('a/b', b'x'); assert s.read('a/b') == b'x'\n"
        + "from airflow_provider_engagelab.exceptions import EngageLabError\n"
        + "assert EngageLabError.__mro__[1] is Exception\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    "path", sorted(p for d in ("operators", "transfers", "sensors") for p in (PACKAGE / d).glob("*.py")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_dag_facing_modules_import_no_heavy_module_at_module_level(path):
    assert module_level_imports(path) & set(HEAVY) == set()
