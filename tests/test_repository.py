"""The repository as committed: its layout, no path of the machine a file was made on, and runnable
diagnostics behind the documented figures."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Top-level folders of the layout; ``configs`` only while it still exists (its files move under loops/).
LAYOUT = {"bench", "bfm_stim", "docs", "examples", "loops", "simulators", "tests"}
# Absolute paths of a machine: its work and temporary folders, a user's home, root's home.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|root|home/[^/\s\"'`]+|Users/[^/\s\"'`]+)/")
# Committed text that may hold such a path, with the reason (a documented example, not a record).
ALLOWED: dict[str, str] = {
    "tests/loops/bench/test_docs.py": "lists the same folder names to check the generated results page for them",
}
DIAGNOSTICS = REPO / "bench" / "diagnostics"


def _git_files(*args: str) -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the repository checks need `git ls-files`")
    p = subprocess.run(["git", "ls-files", "-z", *args], cwd=REPO, capture_output=True)
    if p.returncode:
        pytest.skip(f"not a git checkout ({p.stderr.decode(errors='replace').strip()})")
    return [f for f in p.stdout.decode().split("\0") if f and not f.startswith(".venv/")]


def _text(rel: str) -> str | None:
    """A tracked file's text; None for a binary or a file deleted from the working tree."""
    try:
        data = (REPO / rel).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_the_path_pattern_finds_machine_paths_and_nothing_else():
    # written with {s} for the slash, so that this file holds no such path itself
    text = 'a "{s}tmp{s}x.json" b {s}home{s}ada{s}run c {s}work{s}main{s} d {s}root{s}.cache e {s}Users{s}ada{s}f'
    found = [m.group(0) for m in MACHINE_PATH.finditer(text.format(s="/"))]
    assert found == [x.format(s="/") for x in ("{s}tmp{s}", "{s}home{s}ada{s}", "{s}work{s}", "{s}root{s}",
                                                "{s}Users{s}ada{s}")]
    for ok in ("runs/tmp/x", "bids_root/sub-01", "https://example.org/home/x/", "/proc/1/status", "1/tmp/"):
        assert MACHINE_PATH.search(ok) is None, ok


def _committable() -> list[str]:
    """Tracked files and the untracked ones git does not ignore: what a commit of everything would hold."""
    return _git_files() + _git_files("--others", "--exclude-standard")


def test_no_committed_text_file_holds_a_path_of_this_machine():
    own = str(REPO)
    hits = []
    for rel in _committable():
        text = _text(rel)
        if text is None or rel in ALLOWED:
            continue
        for no, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line) or own in line:
                hits.append(f"{rel}:{no}: {line.strip()[:160]}")
    assert hits == [], "absolute paths of the machine in committed files (write them repo-relative):\n" \
        + "\n".join(hits)


def test_top_level_folders_follow_the_layout():
    files = _committable()
    tops = {f.split("/", 1)[0] for f in files if "/" in f}
    allowed = LAYOUT | ({"configs"} if (REPO / "configs").is_dir() else set())
    stray = sorted(t for t in tops if not t.startswith(".") and t not in allowed)
    assert stray == [], f"top-level folders outside the layout {sorted(allowed)}: {stray}"
    assert not (REPO / "notes").exists(), "notes/ is gone: diagnostics live in bench/diagnostics/"


def test_every_diagnostic_is_listed_and_answers_help():
    readme = (DIAGNOSTICS / "README.md").read_text(encoding="utf-8")
    files = sorted(p for p in DIAGNOSTICS.iterdir() if p.suffix in (".py", ".json"))
    assert any(p.suffix == ".py" for p in files)
    assert [p.name for p in files if f"`{p.name}`" not in readme] == []
    for script in (p for p in files if p.suffix == ".py"):
        rel = script.relative_to(REPO).as_posix()
        assert f"python {rel}" in script.read_text(encoding="utf-8"), f"{rel}: its docstring shows no rerun command"
        p = subprocess.run([sys.executable, rel, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and p.stdout.startswith("usage:"), f"{rel} --help: {p.stderr[-2000:]}"


def test_a_shipped_checkpoint_records_no_path_of_this_machine(tmp_path):
    from loops.ship import _commands, _portable

    outside = tmp_path / "stage1" / "model.pt"
    config = REPO / "runs" / "cfg" / "pretrain.toml"
    extra = {"command": f"bfm-stim pretrain --config {config} --init-from {outside} --lr 5e-4",
             "init_from": {"path": str(outside), "step": 3, "digest": "d", "command": "bfm-stim pretrain"},
             "pretrain_config": {"corpus": {"dir": str(tmp_path / "corpus"), "n_patients": 240}},
             "note": "scores / 2, lr 1/A, path runs/x", "world": 1}
    out = _portable(extra)
    assert out["command"] == "bfm-stim pretrain --config runs/cfg/pretrain.toml --init-from model.pt --lr 5e-4"
    assert out["init_from"] == {**extra["init_from"], "path": "model.pt"}
    assert out["pretrain_config"]["corpus"] == {"dir": "corpus", "n_patients": 240}
    assert out["note"] == extra["note"] and out["world"] == 1
    # the model card's two-stage recipe still finds the source run in the command
    assert "--init-from runs/pretrain-stage1/model.pt" in _commands(out)[1]
