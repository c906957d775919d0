"""Rendering the plugin templates into a new package folder.

Templates are ``string.Template`` files (``$name``, ``${cls}``): Python code is full of
braces, so ``str.format`` or Jinja-style markers would need escaping everywhere, while a
dollar sign never appears in the generated code.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template

from clm_hub import __version__
from clm_hub.errors import ClmHubError

__all__ = ["FILES", "ScaffoldError", "Scaffolded", "generate", "validate_name"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
MAX_NAME_LENGTH = 40

FILES: tuple[tuple[str, str], ...] = (
    ("pyproject.toml.tmpl", "pyproject.toml"),
    ("README.md.tmpl", "README.md"),
    ("__init__.py.tmpl", "src/{package}/__init__.py"),
    ("connector.py.tmpl", "src/{package}/connector.py"),
    ("simulator.py.tmpl", "src/{package}/simulator.py"),
    ("testkit.py.tmpl", "src/{package}/testkit.py"),
    ("py.typed.tmpl", "src/{package}/py.typed"),
    ("test_contract.py.tmpl", "tests/test_contract.py"),
)
"""(template, destination relative to the package folder)."""


class ScaffoldError(ClmHubError):
    """The plugin cannot be generated as asked (bad name, folder already there)."""


@dataclass(frozen=True)
class Scaffolded:
    """What ``generate`` wrote."""

    root: Path
    package: str
    files: tuple[Path, ...]


def validate_name(name: str) -> str:
    """Return ``name`` if it can be a connector name and part of a package name."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"plugin name {name!r} must be a lower-case Python identifier of at most "
            f"{MAX_NAME_LENGTH} characters: letters, digits and single underscores, starting "
            "with a letter (e.g. 'acme' or 'acme_crm')"
        )
    return name


def _variables(name: str) -> dict[str, str]:
    words = name.split("_")
    return {
        "name": name,
        "NAME": name.upper(),
        "cls": "".join(word.capitalize() for word in words),
        "title": " ".join(word.capitalize() for word in words),
        "package": f"clm_hub_{name}",
        "dist": f"clm-hub-{name.replace('_', '-')}",
        "hub_version": __version__,
    }


def generate(name: str, directory: Path) -> Scaffolded:
    """Write the package ``clm-hub-<name>/`` into ``directory``; never overwrite anything."""
    variables = _variables(validate_name(name))
    root = directory / variables["dist"]
    if root.exists():
        raise ScaffoldError(f"{root} already exists; remove it or choose another --dir")
    templates = files("clm_hub.scaffold").joinpath("templates")
    rendered: list[tuple[Path, str]] = []
    for template, destination in FILES:
        text = Template(templates.joinpath(template).read_text(encoding="utf-8"))
        rendered.append((root / destination.format(**variables), text.substitute(variables)))
    # Render everything before writing anything, so a template error leaves no half package.
    written: list[Path] = []
    for path, content in rendered:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return Scaffolded(root=root, package=variables["package"], files=tuple(written))
