"""Architecture rules that keep the layers honest: core/ never imports UI packages or dashboard/."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_CORE = {"panel", "holoviews", "bokeh", "param", "dashboard"}


def _imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


CORE_FILES = sorted((ROOT / "core").rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_ui_or_dashboard(path):
    bad = _imported_top_level_modules(path) & FORBIDDEN_IN_CORE
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}; core/ must stay UI-free"


def test_no_pickle_or_eval_on_user_paths():
    for path in CORE_FILES + sorted((ROOT / "dashboard").rglob("*.py")):
        text = path.read_text()
        for needle in ("allow_pickle=True", "pickle.load", "eval("):
            assert needle not in text, f"{path.relative_to(ROOT)} contains {needle!r}"
