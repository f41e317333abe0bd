"""The documentation in docs/ covers the public API, and the README stays a newcomer's page.

These tests read the docs' sources (Markdown); ``make docs`` (Sphinx, warnings as errors) checks
that they build and that every link between pages resolves.
"""

from __future__ import annotations

import ast
import configparser
import inspect
import json
import re
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest

from airflow_provider_engagelab import get_provider_info
from airflow_provider_engagelab._provider_info import CONN_FIELDS, HOW_TO_GUIDES
from airflow_provider_engagelab.hooks.engagelab import EngageLabAsyncHook, EngageLabHook
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.sensors.engagelab import EngageLabStatsAvailableSensor
from airflow_provider_engagelab.transfers.engagelab_to_sql import EngageLabStatsToSqlOperator
from airflow_provider_engagelab.triggers.engagelab import EngageLabStatsAvailableTrigger

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PACKAGE = "airflow_provider_engagelab"


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        if sub.__module__.startswith(PACKAGE):  # private bases (_FixedStatsOperator) are walked
            found += [c for c in _subclasses(sub) if c not in found]
    return found


#: Each public class and the page that documents its parameters.
PAGES: dict[type, str] = {
    **{c: "operators.md" for c in _subclasses(EngageLabStatsOperator) if not c.__name__.startswith("_")},
    EngageLabStatsToSqlOperator: "sql.md",
    EngageLabStatsAvailableSensor: "sensor.md",
    EngageLabStatsAvailableTrigger: "sensor.md",
    EngageLabHook: "hook.md",
    EngageLabAsyncHook: "hook.md",
}

#: The hook calls users make (documented on hook.md with their parameters).
HOOK_CALLS = ["get_stats", "iter_stats", "get_journey_stats", "get_message_stats",
              "get_webhook_stats", "test_connection"]


def _text(page: str) -> str:
    return (DOCS / page).read_text(encoding="utf-8")


def _all_docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))


def _params(func: Any) -> list[str]:
    return [
        p.name for p in inspect.signature(func).parameters.values()
        if p.name != "self" and not p.name.startswith("_")
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def init_params(cls: type) -> list[str]:
    """Every named ``__init__`` parameter the class accepts from this package's classes.

    A subclass whose ``__init__`` takes only ``**kwargs`` (the three stats shortcuts) passes
    them on, so the parameters of each ``__init__`` in its MRO that this package defines count.
    """
    names: list[str] = []
    for klass in cls.__mro__:
        if klass.__module__.startswith(PACKAGE) and "__init__" in vars(klass):
            names += [n for n in _params(vars(klass)["__init__"]) if n not in names]
    return names


def _mentioned(name: str, text: str) -> bool:
    """``name`` in a code span (alone, or as the first word of a call/assignment)."""
    return re.search(rf"`{re.escape(name)}(`|=|\()", text) is not None


def test_the_classes_are_found() -> None:
    names = {cls.__name__ for cls in PAGES}
    assert {"EngageLabJourneyStatsOperator", "EngageLabMessageStatsOperator",
            "EngageLabWebhookStatsOperator"} <= names
    for cls in PAGES:
        assert init_params(cls), f"{cls.__name__}: no parameters found"


@pytest.mark.parametrize("cls", list(PAGES), ids=lambda c: c.__name__)
def test_every_init_parameter_is_documented_on_its_page(cls: type) -> None:
    page = PAGES[cls]
    text = _text(page)
    missing = [name for name in init_params(cls) if not _mentioned(name, text)]
    assert not missing, f"{cls.__name__}: parameters not in docs/{page}: {missing}"
    assert re.search(rf"\b{cls.__name__}\b", text), f"{cls.__name__} is not named in docs/{page}"


def test_every_hook_call_and_its_parameters_are_documented() -> None:
    text = _text("hook.md")
    for call in HOOK_CALLS:
        assert _mentioned(call, text), f"hook call {call} not in docs/hook.md"
        missing = [name for name in _params(getattr(EngageLabHook, call)) if not _mentioned(name, text)
                   and not re.search(rf"\b{name}\b", text)]
        assert not missing, f"{call}: parameters not in docs/hook.md: {missing}"


def test_the_parameter_check_can_fail() -> None:
    assert init_params(EngageLabStatsOperator)[:2] == ["stats_type", "engagelab_conn_id"]
    assert not _mentioned("no_such_parameter", _text("operators.md"))
    assert not _mentioned("output", "`output_path`")  # a prefix is not a mention


def test_every_connection_extra_is_documented() -> None:
    text = _text("connection.md")
    for key in [*CONN_FIELDS, "proxies", "verify", "cert", "trust_env"]:
        assert _mentioned(key, text), f"connection extra {key} not in docs/connection.md"


def _toctree(text: str) -> list[str]:
    block = re.search(r"```\{toctree\}\n(.*?)```", text, re.S)
    assert block, "docs/index.md has no toctree"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith(":")]


def test_every_page_is_in_the_toctree_and_linked_from_the_readme() -> None:
    pages = sorted(p.stem for p in DOCS.glob("*.md") if p.stem != "index")
    assert sorted(_toctree(_text("index.md"))) == pages
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = set(re.findall(r"\]\((docs/[^)#]+\.md)", readme))
    for link in links:
        assert (REPO / link).is_file(), f"README links to missing {link}"
    for page in set(pages) - {"api", "changelog"}:
        assert f"docs/{page}.md" in links, f"README does not link docs/{page}.md"
    assert "](CHANGELOG.md)" in readme


def test_the_changelog_page_includes_changelog_md() -> None:
    assert "{include} ../CHANGELOG.md" in _text("changelog.md")


def test_the_readme_keeps_what_a_newcomer_needs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150, "the reference belongs in docs/, not in the README"
    for heading in ("## Quick start", "## Install", "## Example", "## Documentation"):
        assert heading in readme
    assert "make demo" in readme and "make test" in readme
    assert 'pip install "airflow-provider-engagelab[async]"' in readme


def test_the_readme_example_is_a_dag_that_parses() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r"## Example\n.*?```python\n(.*?)```", readme, re.S)
    assert example, "README has no python example"
    code = example.group(1)
    assert len(code.splitlines()) <= 25
    ast.parse(code)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # our own README
    tasks = [v for v in namespace.values() if hasattr(v, "task_id")]
    assert {t.task_id for t in tasks} == {"wait_for_yesterday", "journey_stats"}
    (dag,) = {t.dag for t in tasks}
    assert dag.dag_id == "engagelab_daily"


def test_package_metadata_links_the_docs() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    urls = dict(
        (k.strip(), v.strip()) for k, v in
        (line.split("=", 1) for line in cfg["metadata"]["project_urls"].strip().splitlines())
    )
    assert (REPO / urls["Documentation"]).is_file(), urls
    assert (REPO / urls["Changelog"]).is_file(), urls
    docs_extra = cfg["options.extras_require"]["docs"]
    assert "sphinx" in docs_extra and "myst-parser" in docs_extra


def test_every_constraints_file_pins_the_docs_extra() -> None:
    for path in sorted((REPO / "constraints").glob("airflow-*.txt")):
        pins = {ln.split("==")[0].lower() for ln in path.read_text().splitlines() if "==" in ln}
        assert {"sphinx", "myst-parser", "docutils", "alabaster"} <= pins, path.name


def test_provider_info_links_the_how_to_pages() -> None:
    info = get_provider_info()
    (integration,) = info["integrations"]
    assert integration["how-to-guide"] == HOW_TO_GUIDES
    guides = [*HOW_TO_GUIDES, *(t["how-to-guide"] for t in info["transfers"])]
    for guide in guides:
        assert guide.startswith("/docs/") and (REPO / guide.lstrip("/")).is_file(), guide
    # provider.yaml's schema (stricter than the runtime one) accepts these fields
    schema = json.loads((Path(airflow.__file__).parent / "provider.yaml.schema.json").read_text())
    for key in ("integrations", "transfers"):
        item = schema["properties"][key]["items"]
        if "how-to-guide" not in item.get("properties", {}):
            pytest.skip(f"Airflow {airflow.__version__}'s provider.yaml schema has no how-to-guide")
        validator = jsonschema.validators.validator_for(item)(item)
        for entry in info[key]:
            validator.validate(entry)


def test_airflow_shows_the_documentation_url() -> None:
    """Airflow 3.3 reads the provider's documentation URL from the package's Project-URL
    ``Documentation`` (its Providers page links it); older releases do not show one."""
    from airflow.providers_manager import ProvidersManager

    info = ProvidersManager().providers["airflow-provider-engagelab"].data
    if "documentation-url" not in info:
        pytest.skip(f"Airflow {airflow.__version__} shows no documentation URL for providers")
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert f"Documentation = {info['documentation-url']}" in cfg["metadata"]["project_urls"]
