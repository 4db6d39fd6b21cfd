"""docs/results.md and README's benchmark table are generated from bench/*.json and kept in step with them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bfm_stim.exceptions import ConfigError
from loops.bench import docs
from loops.bench.docs_format import BENCH_DIR, Bench

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture()
def bench_copy(tmp_path: Path) -> Path:
    """A scratch copy of bench/ (JSON files and diagnostics) to edit."""
    dst = tmp_path / "bench"
    shutil.copytree(BENCH_DIR, dst, ignore=shutil.ignore_patterns("*.png", "*.py"))
    return dst


def _edit(path: Path, edit) -> None:
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))


def test_committed_page_is_up_to_date():
    page = docs.PAGE.read_text()
    assert page == docs.render(), (
        "docs/results.md differs from what bench/*.json gives; run `python -m loops.bench.docs` and commit the page")
    assert docs.check(readme=None) == []


def test_page_names_no_machine_paths_and_every_section_is_there():
    page = docs.render()
    absolute = re.search(r"(?:^|[\s(`'\"])/[A-Za-z_][^\s)`]*", page, re.M)
    assert absolute is None, f"the page holds an absolute path: {absolute.group(0).strip()!r}"
    for s in docs.sections():
        assert f'<a id="{s.anchor}"></a>' in page and f"## {s.title}" in page
        assert f"](#{s.anchor})" in page, f"the contents do not link {s.anchor}"
    assert "Not run yet" not in page, "a committed benchmark JSON is missing"


def _section_text(page: str, anchor: str) -> str:
    start = page.index(f'<a id="{anchor}"></a>')
    nxt = page.find('<a id="', start + 1)
    return page[start: nxt if nxt > 0 else None]


def _n_targets(targets: dict) -> int:
    n = 0
    for v in targets.values():
        if isinstance(v, dict) and "measured" in v:
            n += 1
        elif isinstance(v, dict) and all(isinstance(x, dict) and "measured" in x for x in v.values()):
            n += len(v)
    return n


@pytest.mark.parametrize("stems, anchor", [
    (("benchmark",), "optimizers-latent"), (("benchmark_bandpower",), "optimizers-bandpower"),
    (("optimizers", "optimizers-quick"), "optimizers-preset"), (("ranking",), "ranking"), (("session",), "session"),
    (("decode",), "decoding"), (("real",), "real"),
])
def test_every_target_of_a_json_is_a_row(stems, anchor):
    b = Bench()
    want = sum(_n_targets(b[s]["targets"]) for s in stems)
    text = _section_text(docs.render(), anchor)
    rows = [ln for ln in text.splitlines() if re.search(r"\| (met|\*\*missed\*\*) \|$", ln)]
    assert want > 0 and len(rows) == want, f"{anchor}: {len(rows)} target rows for {want} targets in {stems}"


def test_surrogate_targets_all_rendered_with_thresholds_from_the_json():
    t = Bench()["surrogate"]["targets"]
    text = _section_text(docs.render(), "surrogate")
    for key in t["met"]:
        m = re.fullmatch(r"forecast_(\d+)ms>=([\d.]+)", key)
        if m:
            assert re.search(rf"R² {m.group(1)} ms, .*\| ≥ {re.escape(m.group(2))} \|", text), key


def test_a_changed_figure_changes_the_page_and_the_check_fails(bench_copy, tmp_path, capsys):
    page = tmp_path / "results.md"
    docs.write(bench_copy, page=page, readme=None)
    assert docs.check(bench_copy, page=page, readme=None) == []
    assert docs.main(["--check", "--bench", str(bench_copy), "--out", str(page), "--readme", str(tmp_path / "none.md")]) == 0

    _edit(bench_copy / "simulator.json", lambda d: d.update(realtime_factor=4321.0))
    # a figure that the prose formats (the summary's ranking line), not only a table cell
    _edit(bench_copy / "ranking.json",
          lambda d: d["summary"]["bg-beta-v0"]["latent/random"]["spearman"].update(median=0.4321))
    new = docs.render(bench_copy)
    assert "4321×" in new and "4321×" not in page.read_text()
    assert "ρ 0.43 on `bg-beta-v0`" in new
    assert "weakly on `bg-beta-v0`, `cortex-jr-epileptic-v0`" in new, "the advice follows the figure below 0.5"

    problems = docs.check(bench_copy, page=page, readme=None)
    assert len(problems) == 1 and "results.md" in problems[0] and "python -m loops.bench.docs" in problems[0]
    assert docs.main(["--check", "--bench", str(bench_copy), "--out", str(page), "--readme", str(tmp_path / "none.md")]) == 1
    err = capsys.readouterr().err
    assert "results.md is stale" in err and "python -m loops.bench.docs" in err

    docs.write(bench_copy, page=page, readme=None)
    assert docs.check(bench_copy, page=page, readme=None) == []


def test_a_missed_target_becomes_met_when_its_figure_does(bench_copy):
    def improve(d):
        d["targets"]["guided_le_5_trials"].update(measured=4.0, met=True)
    _edit(bench_copy / "benchmark.json", improve)
    row = next(r for _, _, r in docs.headline_rows(Bench(bench_copy)) if "`guided`" in r.figure and "median trials" in r.figure)
    assert row.measured == "4" and row.met is True


def test_a_missing_json_gives_a_not_run_section(bench_copy):
    (bench_copy / "ranking.json").unlink()
    (bench_copy / "latency.json").unlink()
    page = docs.render(bench_copy)
    ranking = _section_text(page, "ranking")
    assert "Not run yet: `bench/ranking.json` is missing" in ranking
    assert "bfm-stim bench ranking --json bench/ranking.json" in ranking, "the section still says how to run it"
    assert "Not run yet: `bench/latency.json` is missing" in _section_text(page, "latency")
    table = docs.readme_table(bench_copy)
    assert "`bench/ranking.json` | not run" in table and "`bench/latency.json` | not run" in table
    assert "4 of 4" in _section_text(page, "real"), "the other sections still render"


def test_a_broken_json_names_the_file(bench_copy):
    (bench_copy / "session.json").write_text("{not json")
    with pytest.raises(ConfigError, match="session.json"):
        docs.render(bench_copy)


def test_readme_block_round_trip(bench_copy, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{docs.START}\nold table\n{docs.END}\n\nrest\n")
    msg = docs.check_readme(readme, bench_copy)
    assert msg and "stale" in msg and "python -m loops.bench.docs" in msg
    assert docs.check(bench_copy, page=tmp_path / "results.md", readme=readme)[-1] == msg
    docs.write(bench_copy, page=tmp_path / "results.md", readme=readme)
    text = readme.read_text()
    assert docs.check_readme(readme, bench_copy) is None
    assert text.startswith("# x\n\nintro\n\n") and text.endswith("\n\nrest\n")
    assert docs.readme_table(bench_copy) in text and "old table" not in text
    assert "](docs/results.md#simulator)" in text, "README rows link to the results page"

    _edit(bench_copy / "latency.json", lambda d: d["bridge"].update(p99_ms=3.21))
    assert "stale" in docs.check_readme(readme, bench_copy)

    plain = tmp_path / "PLAIN.md"
    plain.write_text("# no markers\n")
    assert "markers" in docs.check_readme(plain, bench_copy)
    docs.write(bench_copy, page=tmp_path / "results.md", readme=plain)
    assert plain.read_text() == "# no markers\n", "a README without markers is left alone"


def test_readme_table_is_current_where_readme_has_the_markers():
    text = (REPO / "README.md").read_text()
    if docs.START not in text:
        pytest.skip("README.md has no bench-table markers yet")
    assert docs.END in text, f"README.md has {docs.START} but not {docs.END}"
    assert docs.check_readme(REPO / "README.md") is None, "README's benchmark table is stale; run `python -m loops.bench.docs`"


def test_headline_table_is_compact():
    rows = [ln for ln in docs.readme_table().splitlines()[2:]]
    assert 10 <= len(rows) <= 20, len(rows)
    assert all(ln.count(" | ") == 4 for ln in rows)
