from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bfm_stim.exceptions import ConfigError
from bfm_stim.lsl import config

from lsl_helpers import REPO


def test_machine_scope_is_default_and_inherited():
    assert config.scope() == "machine"
    assert os.environ["LSLAPICFG"] == str(config.CONFIG_PATH)
    text = config.CONFIG_PATH.read_text()
    for line in ("ResolveScope = machine", "KnownPeers = {127.0.0.1}", "IPv6 = disable", "ListenAddress = 127.0.0.1",
                 "MachineAddresses = {127.0.0.1}"):
        assert line in text


def test_bad_scope_and_late_change_refused():
    with pytest.raises(ConfigError, match="expected one of"):
        config.configure("internet")
    config.seal()
    with pytest.raises(ConfigError, match="before any stream is created"):
        config.configure("lab")
    assert config.configure("machine") == "machine"


def test_config_applied_before_first_lsl_call_in_a_fresh_process():
    """Importing pylsl through bfm_stim hands liblsl the config content, even without LSLAPICFG."""
    code = ("from bfm_stim.lsl.config import pylsl\n"
            "o = pylsl.StreamOutlet(pylsl.StreamInfo('cfgcheck', 'EEG', 1, 10, 'float32', 'cfgcheck-1'))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LSLAPICFG", "BFM_STIM_LSL_SCOPE")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Configuration loaded from content" in out.stderr


def test_lab_scope_is_explicit_opt_in_via_env():
    code = ("from bfm_stim.lsl import config; import os\n"
            "print(config.scope(), 'machine' in open(os.environ['LSLAPICFG']).read())\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), BFM_STIM_LSL_SCOPE="lab")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["lab", "False"], out.stderr
