"""The package's shape: layers import only downwards, widgets live in ui/ only, units stay small.

ui -> session -> training -> al / data, with reports (exports, diagnostics, forecast) beside training's
inputs; every import counts, also those inside functions (the lazy ones).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "oal_widget"
#: Layer of each top-level module or sub-package; an import must go to a lower layer, or stay inside
#: its own sub-package.
LAYERS = {
    "messages": 0,
    "workdir": 0,
    "server_extension": 0,  # loaded by the Jupyter server, never by the kernel
    "data": 1,
    "al": 1,
    "config": 2,
    "reports": 2,
    "training": 3,
    "session": 4,
    "simulate": 5,
    "ui": 5,
    "cli": 6,
    "docs": 6,
    "__init__": 6,
    "__main__": 7,
}
WIDGET_PACKAGES = ("ipywidgets", "ipyevents", "anywidget")
MAX_CLASS_LINES, MAX_MODULE_LINES = 350, 450


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, path.relative_to(PACKAGE).with_suffix("").parts


def unit(parts) -> str:
    """The layer unit of a module: its sub-package, or the top-level module's name."""
    return parts[0]


def imported(path: Path, parts) -> list[tuple[int, str, str]]:
    """(line, absolute module name inside oal_widget or '' , top-level external name) of every import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = list(parts[:-1]) if parts[-1] != "__init__" else list(parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                inside = name.startswith("oal_widget.")
                out.append(
                    (node.lineno, name[len("oal_widget.") :] if inside else "", "" if inside else name)
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                name = node.module or ""
                if name == "oal_widget" or name.startswith("oal_widget."):
                    base = name[len("oal_widget.") :] if "." in name else ""
                    for alias in node.names:
                        out.append((node.lineno, f"{base}.{alias.name}".strip("."), ""))
                else:
                    out.append((node.lineno, "", name))
                continue
            base = package[: len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            names = [alias.name for alias in node.names] if not node.module else [""]
            for name in names:
                out.append((node.lineno, ".".join(target + ([name] if name else [])), ""))
    return out


def test_layers_import_only_downwards_or_within_their_own_package():
    wrong = []
    for path, parts in modules():
        mine = unit(parts)
        for line, target, _ in imported(path, parts):
            if not target:
                continue
            theirs = target.split(".")[0]
            if theirs == mine or theirs == "__version__":
                continue
            if LAYERS[theirs] >= LAYERS[mine]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {target} ({mine} -> {theirs})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_only_the_ui_imports_widgets():
    wrong = []
    for path, parts in modules():
        if unit(parts) == "ui":
            continue
        for line, _, external in imported(path, parts):
            if external.split(".")[0] in WIDGET_PACKAGES:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {external}")
    assert not wrong, "\n".join(wrong)


def test_no_class_over_350_lines_and_no_module_over_450():
    big = []
    for path, _ in modules():
        text = path.read_text(encoding="utf-8")
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES:
            big.append(f"{path.relative_to(PACKAGE)}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            size = node.end_lineno - node.lineno + 1 if isinstance(node, ast.ClassDef) else 0
            if size > MAX_CLASS_LINES:
                big.append(f"{path.relative_to(PACKAGE)}: class {node.name} {size} lines")
    assert not big, "split these by concern:\n" + "\n".join(big)


def test_the_layering_test_knows_every_unit():
    assert {unit(parts) for _, parts in modules()} <= set(LAYERS)
