"""Sphinx configuration: ``make docs`` builds these pages with warnings as errors (``-W``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_engagelab import __version__  # noqa: E402

project = "airflow-provider-engagelab"
author = "airflow-provider-engagelab contributors"
copyright = "the airflow-provider-engagelab contributors, Apache License 2.0"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"

# MyST: GitHub-style heading anchors, so [text](page.md#a-heading) links resolve (and a broken
# one is a warning, hence an error under -W).
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

# autodoc: classes and the calls users make; the pages around them say what the parameters do.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": False}

html_theme = "alabaster"  # ships with Sphinx: nothing more to install
html_title = f"airflow-provider-engagelab {__version__}"
html_theme_options = {
    "description": "Apache Airflow provider for EngageLab Marketing Automation journey statistics",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "240px",
    "body_max_width": "none",
}
html_static_path: list[str] = []
