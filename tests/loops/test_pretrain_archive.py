"""Pretraining corpus from a lab's archive: a BIDS dataset and NWB files built from the shared recordings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.model.data import CorpusStream, load_shard
from loops.pretrain_corpus import CorpusConfig, write_corpus

REPO = Path(__file__).resolve().parents[2]
RECORDINGS = REPO.parent / "shared" / "data" / "recordings"
FS = 250.0
SHARD_MB = 0.1  # 104,857 bytes: a couple of 3 s pieces of 26 channels at most
SEG_S, MIN_S, HP_HZ = 3.0, 2.0, 2.0  # high-pass 2 Hz: 1 s of filter context on each side of a piece
EDF_TYPES = {"EOG VEOG_I": "eog", "EOG VEOG_II": "eog", "ECG ECG1": "ecg", "ECG ECG2": "ecg", "DIG DTRIG": "stim",
             "REF_EEG REF_EEG": "misc"}


def _write_nwb(raw, path: Path) -> None:
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries
    from pynwb.file import Subject

    nwb = NWBFile(session_description="EDF test file as NWB", identifier="edf-copy", session_id="s1",
                  session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc),
                  subject=Subject(subject_id="nwb01", species="Homo sapiens"))
    dev = nwb.create_device("amplifier")
    grp = nwb.create_electrode_group("scalp", description="scalp EEG", location="scalp", device=dev)
    nwb.add_electrode_column("label", "channel label")
    for i, name in enumerate(raw.ch_names):
        nwb.add_electrode(group=grp, location="scalp", label=name, x=1000.0 * i, y=0.0, z=0.0)  # µm
    region = nwb.create_electrode_table_region(list(range(len(raw.ch_names))), "all electrodes")
    data = (raw.get_data().T * 1e6).astype(np.float32)  # stored in µV, conversion to volts
    nwb.add_acquisition(ElectricalSeries(name="eeg", data=data, electrodes=region, rate=raw.info["sfreq"],
                                         conversion=1e-6))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A BIDS dataset (one subject per shared recording, one broken run) and NWB files (one broken)."""
    if not RECORDINGS.is_dir():
        pytest.skip(f"shared recordings not found at {RECORDINGS}")
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    root = tmp_path_factory.mktemp("archive")
    bids = root / "bids"
    runs = [("test.vhdr", "01", "eeg"), ("test_edf_stim_channel.edf", "02", "eeg"),
            ("test_bdf_stim_channel.bdf", "03", "ieeg"), ("test.vhdr", "04", "eeg")]
    for name, sub, dtype in runs:
        raw = mne.io.read_raw(RECORDINGS / name, verbose="error")
        if name.endswith(".edf"):
            raw.set_channel_types(EDF_TYPES, verbose="error")
        if name.endswith(".vhdr"):
            raw.set_montage("standard_1020", on_missing="ignore", verbose="error")
            if sub == "01":  # a stimulation train, 3-4 s: cut out with its margin
                raw.annotations.append(3.0, 1.0, "electrical_stimulation")
        if dtype == "ieeg":
            raw.set_channel_types({c: "seeg" for c in raw.ch_names if c != "Status"}, verbose="error")
        raw.info["line_freq"] = 50
        with warnings.catch_warnings():  # pybv: "unsupported non-voltage units" of the misc channels
            warnings.simplefilter("ignore", UserWarning)
            write_raw_bids(raw, BIDSPath(subject=sub, task="rest", datatype=dtype, root=bids), verbose="error")
    (bids / "sub-04" / "eeg" / "sub-04_task-rest_eeg.vhdr").write_text("not a BrainVision header\n")
    try:
        import pynwb  # noqa: F401
    except ImportError:  # the NWB part of the archive needs the `archive` extra
        return root
    (root / "nwb").mkdir()
    _write_nwb(mne.io.read_raw(RECORDINGS / "test_edf_stim_channel.edf", verbose="error", preload=True),
               root / "nwb" / "edf.nwb")
    (root / "nwb" / "broken.nwb").write_bytes(b"\x89HDF garbage")
    return root


def _config(root: Path, **kw) -> CorpusConfig:
    base = dict(source="archive", bids_root=str(root / "bids"), nwb=[str(root / "nwb" / "*.nwb")], segment_s=SEG_S,
                min_segment_s=MIN_S, shard_mb=SHARD_MB, highpass_hz=HP_HZ, event_margin_s=0.5)
    return CorpusConfig(**{**base, **kw})


def _series_by_file(corpus: Path) -> dict[str, list[tuple[dict, np.ndarray]]]:
    man = json.loads((corpus / "manifest.json").read_text())
    out: dict[str, list] = {}
    for sh in man["shards"]:
        for meta, s in zip(sh["patients"], load_shard(corpus / sh["file"])):
            out.setdefault(meta["file"], []).append((meta, s))
    return out


def test_archive_corpus_manifest_channels_and_bounds(archive, tmp_path):
    pytest.importorskip("pynwb")
    corpus = tmp_path / "corpus"
    man = json.loads(write_corpus(_config(archive), corpus, fs=FS, info={"fs": FS}, progress=False).read_text())
    arc = man["archive"]
    files = {Path(f["file"]).name: f for f in arc["files"]}
    assert set(files) == {"sub-01_task-rest_eeg.vhdr", "sub-02_task-rest_eeg.edf", "sub-03_task-rest_ieeg.vhdr",
                          "edf.nwb"}
    assert {f["subject"] for f in files.values()} == {"01", "02", "03", "nwb01"}
    # unreadable files are skipped with their reason, never fatal
    skipped = {Path(k["file"]).name: k["reason"] for k in arc["skipped"]}
    assert set(skipped) == {"sub-04_task-rest_eeg.vhdr", "broken.nwb"} and all(skipped.values())
    # neural channels only: stimulation/trigger, EOG, ECG, misc out (by type in BIDS, by name in NWB)
    sub1, sub2, sub3, nwb = (files[k] for k in ("sub-01_task-rest_eeg.vhdr", "sub-02_task-rest_eeg.edf",
                                                "sub-03_task-rest_ieeg.vhdr", "edf.nwb"))
    assert sub1["channel_types"] == ["eeg"] and len(sub1["channels"]) == 26 and sub1["dropped_channels"]["ReRef"] == "type misc"
    assert sub1["positions_known"] >= 20  # electrodes.tsv read back
    assert len(sub2["channels"]) == 19 and sub2["dropped_channels"]["DIG DTRIG"] == "type stim"
    assert sub3["channel_types"] == ["seeg"] and "Status" not in sub3["channels"]
    assert not any(k in c for c in nwb["channels"] for k in ("EOG", "ECG", "DTRIG"))
    assert nwb["channel_types"] == ["ecephys"] and nwb["positions_known"] == len(nwb["channels"])
    # the same EDF through BIDS and through NWB: the same µV scale (conversion factors applied)
    common = [c for c in sub2["channels"] if c in nwb["channels"]]
    assert len(common) == 19
    sd_b = np.array([sub2["sd_uv"][sub2["channels"].index(c)] for c in common])
    sd_n = np.array([nwb["sd_uv"][nwb["channels"].index(c)] for c in common])
    np.testing.assert_allclose(sd_n, sd_b, rtol=0.02)
    # stimulation (3-4 s, margin 0.5 s) cut out of sub-01; events listed
    assert sub1["stimulation_excluded_s"] == pytest.approx(2.0) and "electrical_stimulation" in sub1["event_kinds"]
    assert sub1["seconds_total"] - 2.0 - MIN_S < sub1["seconds"] <= sub1["seconds_total"] - 2.0 + 0.01
    assert sub1["line_freq_hz"] == 50.0 and sub1["notch_hz"] == [50.0, 100.0]

    by_file = _series_by_file(corpus)
    assert sum(len(v) for v in by_file.values()) == man["n_patients"] == arc["segments"]
    for f in arc["files"]:
        pieces = by_file[f["file"]]
        # stimulation-free, unassigned patients, per-file z-scoring to zscore_uv
        assert all(not s.stim_ids.any() and s.patient == -1 and s.rest_samples == s.data.shape[1] for _, s in pieces)
        x = np.concatenate([s.data for _, s in pieces], axis=1)
        np.testing.assert_allclose(x.mean(1), 0.0, atol=0.05 * 15.0)
        np.testing.assert_allclose(x.std(1), 15.0, rtol=0.01)
        for meta, s in pieces:
            assert MIN_S * FS <= s.data.shape[1] <= SEG_S * FS and meta["n_channels"] == s.data.shape[0]
    # bounded memory, structurally: every shard under shard_mb, every read one piece plus its context
    limit = SHARD_MB * (1 << 20)
    assert len(man["shards"]) >= arc["segments"] // 3
    for sh in man["shards"]:
        with np.load(corpus / sh["file"]) as z:
            assert sum(z[k].nbytes for k in ("data", "stim_ids", "positions")) <= limit
    for f in arc["files"]:
        assert f["max_read_samples"] <= (SEG_S + 2 * max(1.0, 2.0 / HP_HZ)) * f["fs_in"] + 1
    assert sub1["max_read_samples"] < sub1["seconds_total"] * sub1["fs_in"] / 2  # never the whole file at once
    # data-parallel ranks read disjoint shards that cover the corpus
    r0, r1 = (CorpusStream(corpus, batch_size=2, n_ctx=4, n_hor=2, patch_len=25, rank=r, world=2).files for r in (0, 1))
    assert not set(r0) & set(r1) and set(r0) | set(r1) == {s["file"] for s in man["shards"]}


def test_archive_mixes_with_simulated_patients(archive, tmp_path):
    cfg = _config(archive, source="synthetic", n_patients=2, rest_s=4.0, n_trials=1, nwb=[], subjects=["sub-02"])
    man = json.loads(write_corpus(cfg, tmp_path / "c", fs=FS, info={}, progress=False).read_text())
    metas = [p for sh in man["shards"] for p in sh["patients"]]
    assert [m.get("source") for m in metas[:2]] == [None, None] and all(m["source"] == "archive" for m in metas[2:])
    assert {m["subject"] for m in metas[2:]} == {"02"} and man["archive"]["n_files"] == 1


def test_archive_pretrains_tiny_model(archive, tmp_path):
    from loops.pretrain import load_config, main

    tiny = (REPO / "loops" / "configs" / "pretrain-tiny.toml").read_text()
    corpus = (f'[corpus]\nsource = "archive"\nbids_root = "{archive / "bids"}"\nsegment_s = {SEG_S}\n'
              f'min_segment_s = {MIN_S}\nshard_mb = {SHARD_MB}\n')
    cfg_path = tmp_path / "archive.toml"
    cfg_path.write_text(corpus + tiny[tiny.index("[model]"):])
    assert load_config(cfg_path).corpus.bids_root == str(archive / "bids")
    # built ahead of training (as before a torchrun launch), then reused by the run
    r = subprocess.run([sys.executable, "-m", "loops.pretrain_archive", str(cfg_path), str(tmp_path / "run"),
                        "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["archive"]["n_files"] == 3
    built = (tmp_path / "run" / "corpus" / "manifest.json").stat().st_mtime_ns
    s = main(cfg_path, tmp_path / "run", steps=4, progress=False)
    assert (tmp_path / "run" / "corpus" / "manifest.json").stat().st_mtime_ns == built
    assert s["steps"] == 4 and all(np.isfinite(v) for v in s["losses"].values())
    assert (tmp_path / "run" / "model.pt").is_file()
    man = json.loads((tmp_path / "run" / "corpus" / "manifest.json").read_text())
    assert man["archive"]["n_files"] == 3 and man["archive"]["n_skipped"] == 1


def test_archive_config_errors(archive, tmp_path):
    with pytest.raises(ValidationError, match="bids_root, nwb or recordings"):
        CorpusConfig(source="archive")
    with pytest.raises(ValidationError, match="datatypes"):
        CorpusConfig(datatypes=["meg"])
    with pytest.raises(ValidationError, match="min_segment_s"):
        CorpusConfig(segment_s=2.0, min_segment_s=5.0)
    with pytest.raises(ValidationError, match="shard_mb"):
        CorpusConfig(shard_mb=0)
    with pytest.raises(ConfigError, match="not a directory"):
        write_corpus(_config(archive, bids_root=str(tmp_path / "nope"), nwb=[]), tmp_path / "c1", fs=FS, info={},
                     progress=False)
    broken = tmp_path / "broken"
    shutil.copytree(archive / "bids", broken)
    for f in broken.rglob("*.vhdr"):
        f.write_text("garbage\n")
    with pytest.raises(ConfigError, match="corpus is empty"):
        write_corpus(_config(archive, bids_root=str(broken), datatypes=["ieeg"], nwb=[]), tmp_path / "c2", fs=FS,
                     info={}, progress=False)


def test_bench_pretrain_real_reuses_sim_corpus_and_loads_shards_once(tmp_path):
    """loops.bench.pretrain_real: a simulated corpus built elsewhere is reused (read only) when its
    [corpus] matches, refused otherwise; its shard loader gives load_shard's series."""
    import dataclasses

    from loops.bench.pretrain_real import _load_shard_once, link_sim_corpus
    from loops.pretrain import build_corpus, load_config

    base = load_config(REPO / "loops" / "configs" / "pretrain-tiny.toml")
    corpus = dataclasses.replace(base.corpus, source="synthetic", n_patients=2, rest_s=4.0, n_trials=1,
                                 patients_per_shard=1, dir="corpus")
    src = tmp_path / "run" / "corpus"
    build_corpus(dataclasses.replace(base, corpus=corpus), src, progress=False)  # as `bfm-stim pretrain` builds it
    before = {p.name: p.stat().st_mtime_ns for p in src.iterdir()}
    dst = tmp_path / "sim"
    cfg = dataclasses.replace(base, corpus=dataclasses.replace(corpus, dir=str(dst)))
    link_sim_corpus(src, dst, dataclasses.asdict(cfg.corpus), FS)
    built = (dst / "manifest.json").stat().st_mtime_ns
    build_corpus(cfg, dst, progress=False)  # reused, not rebuilt
    assert (dst / "manifest.json").stat().st_mtime_ns == built
    assert {p.name: p.stat().st_mtime_ns for p in src.iterdir()} == before
    with pytest.raises(ConfigError, match="another corpus"):
        link_sim_corpus(src, tmp_path / "x", dataclasses.asdict(dataclasses.replace(cfg.corpus, seed=1)), FS)
    shard = dst / json.loads((dst / "manifest.json").read_text())["shards"][0]["file"]
    for a, b in zip(load_shard(shard), _load_shard_once(shard), strict=True):
        for k, v in vars(a).items():
            w = getattr(b, k)
            assert np.array_equal(v, w, equal_nan=True) if isinstance(v, np.ndarray) else v == w
