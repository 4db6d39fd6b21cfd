"""The test suite keeps the package layers: core-library tests need no application code, and no test edits sys.path."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# Top-level helpers the core-library tests import (``tests/`` is on sys.path as the root conftest's folder).
SHARED = ("conftest.py", "lsl_helpers.py", "tiny_bfm.py")


def _imported(path: Path) -> set[str]:
    """Top-level package of every module ``path`` imports, wherever the import statement is."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            out.add(node.args[0].value.split(".")[0])
    return out


def _core_test_files() -> list[Path]:
    files = [p for d in ("bfm_stim", "simulators") for p in (TESTS / d).rglob("*.py")]
    return files + [TESTS / name for name in SHARED]


def test_the_import_scan_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "t.py"
    f.write_text("import os\n\ndef f():\n    from loops.pretrain import main\n    import simulators.twin\n")
    assert _imported(f) == {"os", "loops", "simulators"}


def test_core_library_tests_import_no_application_code():
    files = _core_test_files()
    assert len(files) > 40  # the scan found the suite
    offenders = sorted(str(p.relative_to(TESTS)) for p in files if "loops" in _imported(p))
    assert offenders == [], f"tests of bfm_stim/simulators (and their shared helpers) import loops: {offenders}"


def test_no_test_edits_sys_path():
    offenders = []
    for p in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("insert", "append", "extend") \
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "path" \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "sys":
                offenders.append(f"{p.relative_to(TESTS)}:{node.lineno}")
    assert offenders == []
