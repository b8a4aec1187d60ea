"""The README's generated parts, so that they cannot drift from the code.

The settings table comes from ``config.py``; the API section (Annotator arguments and methods,
keymap, strategies and policies, the ``model_fn`` contract, files in the workdir) from the code's
signatures, docstrings and constants. ``python -m oal_widget.docs`` rewrites both in README.md; tests
check they are current.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

from . import config

START, END = "<!-- settings-table: start -->", "<!-- settings-table: end -->"
API_START, API_END = "<!-- api: start -->", "<!-- api: end -->"


def setting_docs() -> dict[str, str]:
    """Field name -> the ``#:`` comment above it in ``Config``."""
    docs, pending = {}, []
    for line in inspect.getsource(config.Config).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if match and pending:
            docs[match.group(1)] = " ".join(pending)
        pending = []
    return docs


def settings_table() -> str:
    docs = setting_docs()
    defaults = config.Config()
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for field in dataclasses.fields(config.Config):
        default = getattr(defaults, field.name)
        shown = repr(default).replace("|", "\\|")
        rows.append(f"| `{field.name}` | `{shown}` | {docs.get(field.name, '')} |")
    return "\n".join(
        [
            START,
            "## Settings",
            "",
            "Every setting is a keyword of `Annotator(...)` (and of `Config`); a wrong value raises a "
            "`ValueError` that names the setting and what it accepts.",
            "",
            *rows,
            END,
        ]
    )


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def arg_docs(obj) -> dict[str, str]:
    """Argument name -> its text in the ``Args:`` section of ``obj``'s docstring (Google style)."""
    doc = inspect.getdoc(obj) or ""
    out: dict[str, str] = {}
    current = None
    in_args = False
    for line in doc.splitlines():
        if line.strip() == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if line and not line.startswith(" "):
            break  # the next section
        match = re.match(r"    (\*{0,2}\w+): ?(.*)", line)
        if match:
            current = match.group(1)
            out[current] = match.group(2)
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def _params(fn) -> str:
    """``a, b=1, *, c='x'`` without ``self`` and annotations (short enough for a table)."""
    out, star = [], False
    for name, p in inspect.signature(fn).parameters.items():
        if name == "self":
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        out.append(name if p.default is p.empty else f"{name}={p.default!r}")
    return ", ".join(out)


def workdir_files() -> list[tuple[str, str]]:
    """(name, what) of every file oal_widget writes in the workdir, named by ``workdir.py``'s constants."""
    from . import workdir as w

    return [
        (w.STORE_FILE, "labels (one row per image), label names, test split, undo history; SQLite, WAL mode"),
        (w.MODEL_FILE, "the online model, saved on stop (atomically); a restart continues from it"),
        (w.METRICS_FILE, "one row per evaluation: n_labels, accuracy with its band, loss, n_test, seconds"),
        (
            w.FIRST_SIGHT_FILE,
            "each training label's prediction before the model learnt it, saved on stop: a restart keeps "
            "the review queue and the estimate's calibration",
        ),
        (f"{w.FINAL_DIR}/{w.MODEL_FILE}", "the final fit: a new model trained from scratch on every label"),
        (f"{w.FINAL_DIR}/{w.MODEL_CARD_FILE}", "labels, counts, test metrics, settings, date, versions"),
        (
            f"{w.CACHE_DIR}/",
            "decoded images (`images-*.data`) and frozen-backbone embeddings (`embeddings-*.data`), "
            "memory-mapped; rebuilt when missing, safe to delete",
        ),
    ]


MODEL_FN_CONTRACT = (
    "A `model_fn` is any callable `(num_classes, input_shape) -> keras.Model`, called in the trainer's "
    "thread (once, and again on Retry and for the final fit). The model must be compiled, take "
    "`(None, *input_shape)` images scaled to [0, 1] and output `(None, num_classes)` softmax "
    "probabilities; labels are integer class indices, so use `sparse_categorical_crossentropy` "
    "(binary or one-hot categorical cross-entropy is refused). `oal_widget.models.check_model` checks "
    "this and its error says what to fix; the default is `oal_widget.default_model_fn`, and "
    "`oal_widget.transfer_model_fn(weights_path)` builds a frozen backbone from local weights."
)


def api_section() -> str:
    """The README's API section, from the code."""
    from . import config
    from .al import registry
    from .ui import panel

    sig = inspect.signature(panel.Annotator.__init__)
    docs = arg_docs(panel.Annotator)
    rows = ["| argument | default | meaning |", "| --- | --- | --- |"]
    for name, param in sig.parameters.items():
        if name == "self":
            continue
        shown = f"**{name}" if param.kind is param.VAR_KEYWORD else name
        default = "" if param.default is param.empty else f"`{param.default!r}`"
        rows.append(f"| `{shown}` | {default} | {_cell(docs.get(shown, docs.get(name, '')))} |")

    members = ["| member | what |", "| --- | --- |"]
    for name in ("labels", "history", "model", "workdir", "session"):
        attr = inspect.getattr_static(panel.Annotator, name, None)
        text = (
            _first_line(attr.fget) if isinstance(attr, property) else "the headless `Session` below the panel"
        )
        members.append(f"| `.{name}` | {_cell(text)} |")
    for name in ("stop", "final_fit", "export", "diagnose", "forecast"):
        fn = getattr(panel.Annotator, name)
        members.append(f"| `.{name}({_params(fn)})` | {_cell(_first_line(fn))} |")

    keys = ["| key | action |", "| --- | --- |"]
    for key, action in panel.DEFAULT_KEYS.items():
        what = (
            f"label with label #{action[1] + 1}" if isinstance(action, tuple) else panel.ACTIONS[str(action)]
        )
        keys.append(f"| `{key}` | {_cell(what)} |")

    strat = ["| strategy | what it scores (higher = asked sooner) |", "| --- | --- |"]
    for name in config.STRATEGY_NAMES:
        strat.append(f"| `{name}` | {_cell(_first_line(registry.get_strategy(name)))} |")
    pol = ["| policy | how scores become an order |", "| --- | --- |"]
    for name in config.POLICY_NAMES:
        policy = registry.POLICIES[name][0]  # the policy itself, or its factory
        pol.append(f"| `{name}` | {_cell(_first_line(policy))} |")

    files = ["| file | what |", "| --- | --- |"]
    files += [f"| `{name}` | {_cell(what)} |" for name, what in workdir_files()]
    return "\n".join(
        [
            API_START,
            "## API",
            "",
            "Generated from the code by `python -m oal_widget.docs`; `tests/test_api_docs.py` fails when "
            "it is stale.",
            "",
            "### `Annotator(images, labels=None, ...)`",
            "",
            *rows,
            "",
            *members,
            "",
            "### Keymap (`DEFAULT_KEYS`; change it with `keymap={...}`)",
            "",
            *keys,
            "",
            "`keymap={'a': ('label', 0), 'x': 'skip', 'p': None}` maps `a` to the first label, `x` to skip "
            f"and removes `p`. Actions: {', '.join(f'`{a}`' for a in panel.ACTIONS)}.",
            "",
            "### Strategies and policies (`strategy=`, `policy=`; a callable works too)",
            "",
            *strat,
            "",
            *pol,
            "",
            "### The `model_fn` contract",
            "",
            MODEL_FN_CONTRACT,
            "",
            "### Files in the workdir (`<images>/.oal/` unless `workdir=`)",
            "",
            *files,
            API_END,
        ]
    )


def _replace_between(text: str, start_marker: str, end_marker: str, block: str) -> str:
    start, end = text.index(start_marker), text.index(end_marker) + len(end_marker)
    return text[:start] + block + text[end:]


def update_readme(readme: Path) -> bool:
    """Rewrite the generated blocks (settings table, API section); True when the file changed."""
    text = readme.read_text(encoding="utf-8")
    new = _replace_between(text, START, END, settings_table())
    if API_START in new:
        new = _replace_between(new, API_START, API_END, api_section())
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    changed = update_readme(Path(__file__).resolve().parents[1] / "README.md")
    print("README.md generated sections " + ("updated" if changed else "already current"))
