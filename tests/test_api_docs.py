"""Every public name is in the API reference (doc/api.rst) and has a runnable example.

The public names are the ``__all__`` of skmetaot and of each of its public sub-modules (for a
module without ``__all__``: the functions and classes it defines whose names do not start with an
underscore). The API page documents each object once, under the name users import it from, so a
name that is re-exported elsewhere (``skmetaot.solvers.sinkhorn`` is ``skmetaot.sinkhorn``)
counts as listed when the object itself is. The examples run as doctests (``--doctest-modules``).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import skmetaot

DOC = Path(__file__).resolve().parents[1] / "doc"
API_PAGE = DOC / "api.rst"
#: Pages whose ``>>>`` snippets run here, so that the guide's code stays true to the API.
GUIDE_PAGES = sorted([DOC / "index.rst", DOC / "install.rst",
                      *(DOC / "user_guide").glob("*.rst")])

#: The modules whose public names the API page documents: the package and every public
#: sub-module (test_public_modules_are_covered fails when a new one appears).
PUBLIC_MODULES = (
    "skmetaot",
    "skmetaot.amortize",
    "skmetaot.costs",
    "skmetaot.da",
    "skmetaot.datasets",
    "skmetaot.distributed",
    "skmetaot.estimators",
    "skmetaot.evaluation",
    "skmetaot.geometry",
    "skmetaot.measures",
    "skmetaot.metrics",
    "skmetaot.nn",
    "skmetaot.plotting",
    "skmetaot.pot",
    "skmetaot.sampling",
    "skmetaot.solvers",
)


def public_names(module_name: str) -> list[str]:
    """``__all__`` of the module, else the functions and classes it defines, public-named."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return sorted(
        name for name, obj in vars(module).items()
        if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module_name
    )


def documented_names(text: str) -> list[str]:
    """Fully qualified names listed in the ``autosummary`` tables of an rst page."""
    current, names, in_table = None, [], False
    for line in text.splitlines():
        stripped = line.strip()
        match = re.match(r"\.\. currentmodule:: (\S+)$", stripped)
        if match:
            current = match.group(1)
        if stripped.startswith(".. autosummary::"):
            in_table = True
            continue
        if in_table and stripped and not line[0].isspace():
            in_table = False
        if in_table and stripped and not stripped.startswith(":"):
            names.append(f"{current}.{stripped}")
    return names


def resolve(qualified: str):
    module_name, _, name = qualified.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


PUBLIC = [(module, name) for module in PUBLIC_MODULES for name in public_names(module)]
DOCUMENTED = documented_names(API_PAGE.read_text(encoding="utf-8"))


def _unique_objects():
    """One (qualified name, object) per distinct public object, in PUBLIC's order."""
    seen, out = set(), []
    for module, name in PUBLIC:
        obj = getattr(importlib.import_module(module), name)
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append((f"{module}.{name}", obj))
    return out


def examples_section(doc: str) -> str:
    """The body of the numpydoc ``Examples`` section of ``doc`` ('' when there is none)."""
    match = re.search(r"^Examples\n-{8,}\n(.*?)(?=^\S[^\n]*\n-{3,}\n|\Z)", doc,
                      flags=re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


def test_public_modules_are_covered():
    found = {"skmetaot"} | {f"skmetaot.{info.name}" for info in
                            pkgutil.iter_modules(skmetaot.__path__)
                            if not info.name.startswith("_")}
    assert found == set(PUBLIC_MODULES), (
        "a public module was added or removed: list it in PUBLIC_MODULES and document its "
        "names in doc/api.rst")


def test_api_page_parses():
    assert len(DOCUMENTED) >= 50
    assert len(DOCUMENTED) == len(set(DOCUMENTED)), "a name is listed twice in doc/api.rst"


@pytest.mark.parametrize("qualified", DOCUMENTED)
def test_documented_name_exists(qualified):
    """No stale entry: every name in doc/api.rst imports."""
    resolve(qualified)


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_is_in_api_page(module, name):
    obj = getattr(importlib.import_module(module), name)
    listed = [q for q in DOCUMENTED if resolve(q) is obj]
    assert listed, f"{module}.{name} is public but not listed in doc/api.rst"


@pytest.mark.parametrize(("qualified", "obj"), _unique_objects(),
                         ids=[q for q, _ in _unique_objects()])
def test_public_name_has_runnable_example(qualified, obj):
    doc = inspect.cleandoc(obj.__doc__ or "")
    assert doc, f"{qualified} has no docstring"
    body = examples_section(doc)
    assert ">>>" in body, (
        f"{qualified} has no numpydoc 'Examples' section with a doctest (>>> lines)")


def test_examples_section_detection():
    """The checker itself: it must see a missing section and a section without code."""
    with_example = "Summary.\n\nExamples\n--------\n>>> 1 + 1\n2\n"
    without_code = "Summary.\n\nExamples\n--------\nNone here.\n\nNotes\n-----\n>>> 1\n1\n"
    assert ">>>" in examples_section(with_example)
    assert ">>>" not in examples_section(without_code)
    assert examples_section("Summary only.") == ""


@pytest.mark.parametrize("page", GUIDE_PAGES,
                         ids=[page.relative_to(DOC).as_posix() for page in GUIDE_PAGES])
def test_guide_snippets_run(page):
    """The ``>>>`` snippets of the landing page, installation page and user guide."""
    failures, _ = doctest.testfile(str(page), module_relative=False, verbose=False,
                                   optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                                   raise_on_error=False, report=True)
    assert failures == 0, f"{failures} snippet(s) of {page.name} failed (see the output above)"


EXAMPLES = sorted((DOC.parent / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[script.name for script in EXAMPLES])
def test_example_header_is_a_gallery_title(script):
    """sphinx-gallery reads the docstring's first lines as an rst title: ``=`` as long as it."""
    lines = script.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '"""', f"{script.name} must start with a docstring opening on its own line"
    title, underline = lines[1], lines[2]
    assert title.strip() and set(underline) == {"="} and len(underline) == len(title), (
        f"{script.name}: the title underline must be '=' repeated {len(title)} times")
