"""Reading the files a person names: one ConfigError line naming the file, the fault and what to do."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bfm_stim import files
from bfm_stim.exceptions import BfmStimError, ConfigError
from bfm_stim.files import check_readable, load_npy, read_toml

REPO = Path(__file__).resolve().parents[2]


def test_read_toml_parses_and_names_line_and_column_of_a_syntax_error(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[guided]\nseed = 3\nname = "x"\n')
    assert read_toml(good) == {"guided": {"seed": 3, "name": "x"}}
    bad = tmp_path / "bad.toml"
    bad.write_text("[guided]\nseed = 3\nlr = = 0.1\n")
    with pytest.raises(ConfigError) as e:
        read_toml(bad, what="optimizer settings file")
    msg = str(e.value)
    assert str(bad) in msg and "line 3, column" in msg and "optimizer settings file" in msg
    assert isinstance(e.value, BfmStimError) and "\n" not in msg
    bad.write_text("[guided]\nn_starts = [1, 2\n")
    # tomllib (3.11+) places an unclosed array at the end of the file, tomli (3.10) at the next line
    with pytest.raises(ConfigError, match=r"not valid TOML at (its end \(line 3\)|line 3, column 1) \(Unclosed array\)"):
        read_toml(bad)


@pytest.mark.parametrize("make, needle", [
    (lambda d: d / "missing.toml", "not found"),
    (lambda d: d, "is a folder"),
    (lambda d: (d / "latin1.toml").write_bytes(b'name = "\xe9"\n') and d / "latin1.toml", "not UTF-8"),
])
def test_read_toml_file_faults_are_config_errors_naming_the_file(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=needle) as e:
        read_toml(path, what="session config")
    assert str(path) in str(e.value) and "session config" in str(e.value)


def test_load_npy_reads_arrays_and_refuses_missing_corrupt_and_pickled_files(tmp_path):
    np.save(tmp_path / "z.npy", np.arange(4.0))
    assert load_npy(tmp_path / "z.npy").tolist() == [0.0, 1.0, 2.0, 3.0]
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "z.npy").read_bytes()[:-8])
    (tmp_path / "text.npy").write_text("not an array")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, needle in (("nope.npy", "not found"), ("trunc.npy", "not a readable .npy"),
                         ("text.npy", "no numeric .npy"), ("obj.npy", "no numeric .npy")):
        with pytest.raises(ConfigError, match=re.escape(needle)) as e:
            load_npy(tmp_path / name, what="latent target")
        assert str(tmp_path / name) in str(e.value) and "numpy.save" in str(e.value)


def test_check_readable_names_what_and_hint(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"x")
    assert check_readable(tmp_path / "a.pt") == tmp_path / "a.pt"
    with pytest.raises(ConfigError, match=r"checkpoint not found: .*b\.pt; pass another"):
        check_readable(tmp_path / "b.pt", what="checkpoint", hint="pass another")


def test_before_python_3_11_the_reader_uses_tomli(monkeypatch):
    """On 3.10 the reader's module is tomli; on 3.11+ load the module as 3.10 would, with a stand-in ``tomli``."""
    if sys.version_info < (3, 11):
        import tomli

        assert files.tomllib is tomli
        return
    import tomllib

    stand_in = types.SimpleNamespace(loads=tomllib.loads, TOMLDecodeError=tomllib.TOMLDecodeError)
    monkeypatch.setitem(sys.modules, "tomli", stand_in)
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    spec = importlib.util.spec_from_file_location("_files_py310", files.__file__)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.tomllib is stand_in


def test_only_the_reader_imports_tomllib_unguarded():
    """``tomllib`` is 3.11+: elsewhere it is imported only behind a version check (or not at all)."""
    offenders = []
    for pkg in ("bfm_stim", "loops", "simulators"):
        for path in (REPO / pkg).rglob("*.py"):
            lines = path.read_text(encoding="utf-8").splitlines()
            for i, line in enumerate(lines):
                if re.match(r"\s*import tomllib\b", line) and not (i and "version_info" in lines[i - 1]):
                    offenders.append(f"{path.relative_to(REPO)}:{i + 1}")
    assert offenders == []
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'requires-python = ">=3\.1[01]"', text) and re.search(r"tomli[^\n]*python_version < '3.11'", text)
