"""python/ installs with pip (pyproject.toml) and the installed module imports."""

import subprocess
import sys

from conftest import ROOT


def test_pip_install_no_build_isolation_into_a_venv(tmp_path):
    # Debian's interpreter refuses system-wide pip installs (PEP 668): a venv
    # that sees the system's python3-zmq/-msgpack/-numpy is the way.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-index",
                    str(ROOT / "python")], check=True, cwd=tmp_path, timeout=300)
    out = subprocess.run([python, "-c", "import livealign; print(livealign.__file__, livealign.Sender.__name__)"],
                         check=True, capture_output=True, text=True, cwd=tmp_path, env={}).stdout
    assert str(venv) in out and "Sender" in out
