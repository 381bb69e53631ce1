"""Every third-party module greycloud imports comes from a dependency it declares.

Read from the source with ``ast``; each imported module is traced to the installed distribution
that provides it. An import that runs when its module is imported must come from a core
dependency, unless the module belongs to an extra (the CLI, the emulator, the Redis store) whose
entry point names the extra when it is missing (``tests/test_extras.py``). Imports deferred to a
function, guarded by ``except ImportError`` or seen only by the type checker may come from any
extra.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path

from tests.test_imports import PACKAGE, ROOT, module_name

# Modules that only run with an extra installed, and the extra; the pytest plugin runs inside
# pytest, which is there by definition.
EXTRA_HOMES = {
    "greycloud._cli": "cli",
    "greycloud.testing": "emulator",
    "greycloud._async.limiter_redis": "redis",
    "greycloud._sync.limiter_redis": "redis",
    "greycloud.pytest_plugin": "pytest",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return canonical(match.group())


@cache
def declared() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """The core dependencies and each extra's own (``greycloud[...]`` expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = frozenset(requirement_name(r) for r in project["dependencies"])
    raw: dict[str, list[str]] = project["optional-dependencies"]

    def expand(extra: str) -> frozenset[str]:
        names: set[str] = set()
        for requirement in raw[extra]:
            if requirement.startswith("greycloud["):
                for inner in requirement[len("greycloud[") : requirement.index("]")].split(","):
                    names |= expand(inner.strip())
            else:
                names.add(requirement_name(requirement))
        return frozenset(names)

    return core, {extra: expand(extra) for extra in raw}


@cache
def distribution_of_files() -> dict[Path, str]:
    owners: dict[Path, str] = {}
    for distribution in metadata.distributions():
        for file in distribution.files or ():
            if file.suffix == ".py":
                path = Path(str(distribution.locate_file(file))).resolve()
                owners[path] = canonical(distribution.metadata["Name"])
    return owners


def distribution_of(module: str) -> str | None:
    """The distribution providing ``module`` (None for the standard library)."""
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names:
        return None
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:
        spec = None
    if spec is None and "." in module:  # ``from x import name``: name is not a module
        return distribution_of(module.rpartition(".")[0])
    assert spec is not None, f"{module} is not installed in the development environment"
    origins = [spec.origin] if spec.origin else []
    origins += [f"{place}/__init__.py" for place in spec.submodule_search_locations or ()]
    for origin in origins:
        owner = distribution_of_files().get(Path(origin).resolve())
        if owner:
            return owner
    raise AssertionError(f"no installed distribution provides {module} ({origins})")


def guarded_by_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    names = {"ImportError", "ModuleNotFoundError"}
    for handler in handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(kind, ast.Name) and kind.id in names for kind in kinds):
            return True
    return False


def imports(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    """``(module, eager)`` for each absolute import: eager when it runs at import time,
    unguarded by ``except ImportError``."""

    def walk(node: ast.AST, eager: bool) -> Iterator[tuple[str, bool]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, eager
        elif isinstance(node, ast.ImportFrom):
            if not node.level and node.module:  # the name may be a submodule (google.genai)
                for alias in node.names:
                    yield f"{node.module}.{alias.name}", eager
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for child in ast.iter_child_nodes(node):
                yield from walk(child, False)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                yield from walk(child, False)
            for child in node.orelse:
                yield from walk(child, eager)
        elif isinstance(node, ast.Try) and guarded_by_import_error(node.handlers):
            for child in node.body:
                yield from walk(child, False)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                yield from walk(child, eager)
        else:
            for child in ast.iter_child_nodes(node):
                yield from walk(child, eager)

    yield from walk(tree, True)


def home_extra(module: str) -> str | None:
    for prefix, extra in EXTRA_HOMES.items():
        if module == prefix or module.startswith(prefix + "."):
            return extra
    return None


def undeclared_imports() -> list[str]:
    core, extras = declared()
    anywhere = core.union(*extras.values())
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        home = home_extra(module)
        eager_allowed = core | extras.get(home or "", frozenset()) | {canonical(home or "")}
        for imported, eager in imports(ast.parse(path.read_text(), str(path))):
            if imported.partition(".")[0] in ("greycloud", "__future__"):
                continue
            owner = distribution_of(imported)
            if owner is None or owner in (eager_allowed if eager else anywhere):
                continue
            if not eager:
                needed = "declared at all"
            else:
                needed = f"a core or '{home}' dependency" if home else "a core dependency"
            problems.append(f"{module} imports {imported} from {owner}, which is not {needed}")
    return problems


def test_every_imported_distribution_is_declared() -> None:
    problems = undeclared_imports()
    assert not problems, "\n".join(problems)


def test_the_scan_sees_the_imports_it_judges() -> None:
    tree = ast.parse(
        "import requests\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import redis\n"
        "try:\n    import aiohttp\nexcept ImportError:\n    pass\n"
        "def later():\n    import typer\n"
    )
    assert list(imports(tree)) == [
        ("requests", True),
        ("typing.TYPE_CHECKING", True),
        ("redis", False),
        ("aiohttp", False),
        ("typer", False),
    ]
    assert distribution_of("google.genai.types") == "google-genai"
    assert distribution_of("google.auth.credentials") == "google-auth"
    assert distribution_of("google.genai.types.Part") == "google-genai"
    assert distribution_of("json") is None
    core, extras = declared()
    assert "google-genai" in core
    assert {"typer", "rich", "aiohttp", "redis"} <= extras["all"]


def test_the_lowest_python_claimed_is_what_the_tools_and_dependencies_assume() -> None:
    from packaging.specifiers import SpecifierSet

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    claimed = SpecifierSet(config["project"]["requires-python"])
    floor = min(
        (spec.version for spec in claimed if spec.operator == ">="),
        key=lambda version: tuple(map(int, version.split("."))),
    )
    assert floor == "3.11"
    assert config["tool"]["ruff"]["target-version"] == "py" + floor.replace(".", "")
    assert config["tool"]["mypy"]["python_version"] == floor
    assert sys.version_info >= (3, 11)
    # Every installed dependency accepts the lowest Python we claim.
    core, extras = declared()
    for name in sorted(core.union(*extras.values())):
        requires = metadata.metadata(name).get("Requires-Python")
        assert not requires or SpecifierSet(requires).contains(floor), (name, requires)
