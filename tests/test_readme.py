"""README.md: short, in the promised order, and every command in its code blocks parses; the short ones run.

Long commands (sessions, benchmarks, optimizations) are only parsed with the real ``bfm-stim`` argument
parser, so a renamed or removed option fails here; the short ones (``--help``, ``keygen``, ``configs``,
``patients``, a few seconds of ``simulate``) run as written in a scratch folder.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_LINES = 250

# Section titles, in the order README must present them.
ORDER = ["What it is", "Install", "A 5-minute tour", "A real device over LSL", "Benchmarks", "Read more"]
# bfm-stim subcommands cheap enough to run as written (seconds each).
RUN = {"--help", "keygen", "configs", "patients", "simulate"}


def _blocks(text: str) -> list[tuple[str, str]]:
    """Fenced code blocks as (language, body)."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def _commands(text: str) -> list[list[str]]:
    """Shell command lines of the unlabelled/bash blocks, comments and a trailing ``&`` removed, split."""
    out = []
    for lang, body in _blocks(text):
        if lang not in ("", "bash", "sh", "console"):
            continue
        for line in body.splitlines():
            line = line.split("  #", 1)[0].strip().removesuffix("&").strip()
            if line and not line[0] in "│┌└▲▼◀▶ " and re.match(r"^[a-z.]", line) and "──" not in line:
                out.append(shlex.split(line))
    return out


def _bfm_stim(text: str) -> list[list[str]]:
    return [c[1:] for c in _commands(text) if c[0] == "bfm-stim"]


def test_readme_is_short_and_in_order():
    text = README.read_text()
    n = len(text.splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; keep it to {MAX_LINES} and move detail to docs/"
    first = _blocks(text)[0][1].splitlines()
    assert first[0].startswith("make demo") and first[1].startswith("make test"), "the two commands come first"
    assert text.index("make demo") < text.index("\n## "), "the two commands come before any section"
    heads = [m.group(1) for m in re.finditer(r"^## (.+)$", text, re.M)]
    assert [h for h in heads if h in ORDER] == ORDER, f"README sections {heads}; expected the order {ORDER}"


def test_readme_links_and_pictures_exist():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets, "README links nowhere"
    missing = [t for t in targets if not t.startswith("http") and not (REPO / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
    assert len(re.findall(r"!\[[^]]*\]\(docs/img/[^)]+\.png\)", text)) >= 3, "one picture per job of the tour"


def test_make_targets_and_extras_exist():
    text = README.read_text()
    make = (REPO / "Makefile").read_text()
    for c in _commands(text):
        if c[0] == "make":
            assert re.search(rf"^{c[1]}:", make, re.M), f"README runs `make {c[1]}`; the Makefile has no such target"
    py = (REPO / "pyproject.toml").read_text()
    for extra in re.findall(r'\.\[([a-z,]+)\]', text):
        for e in extra.split(","):
            assert re.search(rf"^{e} = \[", py, re.M), f"README installs the extra {e!r}; pyproject.toml lacks it"


def test_every_bfm_stim_command_parses():
    from loops.cli import build_parser
    from simulators.playback import build_parser as play_parser
    from simulators.stream import build_parser as serve_parser

    cmds = _bfm_stim(README.read_text())
    assert len(cmds) >= 8, f"only {len(cmds)} bfm-stim commands found in README"
    parser = build_parser()
    for argv in cmds:
        if argv[:1] == ["--help"]:
            continue
        if argv[0] == "serve":
            serve_parser("bfm-stim serve").parse_args(argv[1:])
        elif argv[0] == "play":
            play_parser("bfm-stim play").parse_args(argv[1:])
        else:
            ns = parser.parse_args(argv)
            assert ns.command == argv[0]


def test_bad_option_would_fail_the_parse_check():
    """The check above can fail: argparse rejects an option the CLI does not have."""
    from loops.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["session", "--no-such-option"])


def test_short_commands_run_as_written(tmp_path):
    ran = []
    for argv in _bfm_stim(README.read_text()):
        if argv[0] not in RUN:
            continue
        if argv[0] == "simulate":  # as written but shorter: the README's 60 s takes longer than a unit test should
            i = argv.index("--duration")
            argv = argv[: i + 1] + ["2"] + argv[i + 2:]
        r = subprocess.run([sys.executable, "-m", "loops.cli", *argv], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
        assert r.returncode == 0, f"`bfm-stim {shlex.join(argv)}` failed:\n{r.stderr[-2000:]}"
        ran.append(argv[0])
    assert {"keygen", "simulate"} <= set(ran), f"ran only {ran}"
