"""Sphinx configuration of the skmetaot documentation.

``make docs`` builds the full site (the gallery examples are executed, which trains models for
minutes); ``make docs-fast`` passes ``-D plot_gallery=0`` so that the examples are rendered
without being run. Both build with ``-W --keep-going``: any warning fails the build.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import skmetaot

DOC_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(DOC_DIR.parent))  # the checkout itself, even without an editable install

# -- project --------------------------------------------------------------------------------------
project = "skmetaot"
author = "the skmetaot developers"
copyright = "the skmetaot developers, BSD-3-Clause"
release = skmetaot.__version__
version = ".".join(release.split(".")[:2])

# -- general --------------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
# Unresolvable cross-references are warnings, hence errors under -W: a renamed or removed name
# breaks the build. Names from the dependencies (no intersphinx: the build runs offline) are
# exempt.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|ot|sklearn|scipy|matplotlib|joblib)(\..*)?"),
]

# -- autodoc / autosummary / numpydoc ------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # the numpydoc sections document the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- sphinx-gallery -------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(DOC_DIR.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "backreferences_dir": "generated/backreferences",
    "doc_module": ("skmetaot",),
    "remove_config_comments": True,
    "download_all_examples": False,
    # In the full build (``make docs``) the examples run, and a failing one fails the build at
    # the end (after the others ran); ``-D plot_gallery=0`` renders them without running them.
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skmetaot {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "install": []}


def _write_benchmark_list() -> None:
    """``generated/benchmarks.rst.inc``: the CLI's benchmark list, included by install.rst.

    One list (``skmetaot.__main__.BENCHMARKS``) feeds ``skmetaot bench --help`` and the docs.
    """
    from skmetaot.__main__ import BENCHMARKS

    rows = "".join(f"   * - ``{name}``\n     - {what}\n" for name, what in BENCHMARKS.items())
    text = (".. list-table::\n   :header-rows: 1\n   :widths: 20 80\n\n"
            "   * - ``NAME``\n     - what it measures\n" + rows)
    target = DOC_DIR / "generated" / "benchmarks.rst.inc"
    target.parent.mkdir(exist_ok=True)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


_write_benchmark_list()


def _defined_outside(obj) -> bool:
    """Whether a member comes from another library (scikit-learn, torch, POT): a base class."""
    target = getattr(obj, "fget", obj)  # a property's module is its getter's
    module = getattr(target, "__module__", None)
    return isinstance(module, str) and not module.startswith("skmetaot")


def _skip_member(app, what, name, obj, skip, options):
    """Leave out the ``set_*_request`` methods that scikit-learn's metadata routing generates.

    The class template documents inherited members, so that the methods our estimators share
    through private mixins (``refine`` and its kin) have pages; the members inherited from other
    libraries' bases (``get_params``, ``nn.Module.forward``...) stay with their own documentation.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if what == "class" and _defined_outside(obj):
        return True
    return None


def _public_signature(app, what, name, obj, options, signature, return_annotation):
    """Hide the private fields of dataclasses (``_state=None``...) from class signatures."""
    if what != "class" or not signature or "_" not in signature:
        return None
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    if not any(p.name.startswith("_") for p in params):
        return None
    shown = [p.replace(annotation=inspect.Parameter.empty) for p in params
             if not p.name.startswith("_")]
    return str(inspect.Signature(shown)), return_annotation


def setup(app):
    """Connect the member filter and the signature filter."""
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-signature", _public_signature)
