"""Fixtures of the Python client tests: the real `livealign serve` as a child
process on OS-chosen 127.0.0.1 ports, and synthetic drifting series.

Run with Debian's interpreter (it has python3-zmq, -msgpack, -numpy, -pytest):
    PYTHONPATH=python /usr/bin/python3 -m pytest tests/python
The binary is $LIVEALIGN_BINARY, else build/livealign.
"""

import os
import pathlib
import queue
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import livealign  # noqa: E402

BINARY = os.environ.get("LIVEALIGN_BINARY", str(ROOT / "build" / "livealign"))
START_TIMEOUT_S = 30


class Daemon:
    """`livealign serve` with every endpoint bound on an OS-chosen port; the
    endpoints are read from its start-up line."""

    ENDPOINTS = re.compile(r"frames from (\S+) .*results on (\S+), control on (\S+)")

    def __init__(self, out_dir, extra_args=(), source=None, source_pattern="pull"):
        args = [BINARY, "serve", "--http", "", "--out", str(out_dir),
                "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*",
                "--source-pattern", source_pattern, "--average-interval-s", "0"]
        if source is None:
            args += ["--source", "tcp://127.0.0.1:*", "--source-bind", "true"]
        else:
            args += ["--source", source]
        self.process = subprocess.Popen(list(args) + list(extra_args), stderr=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, text=True)
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._read_stderr, daemon=True).start()
        match = None
        while match is None:
            try:
                line = self.lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                self.kill()
                raise RuntimeError("livealign serve did not report its endpoints: %s" % self.log)
            if line is None:
                raise RuntimeError("livealign serve exited: %s" % "".join(self.log))
            match = self.ENDPOINTS.search(line)
        self.source, self.publish, self.control_endpoint = match.groups()
        self.control = livealign.Control(self.control_endpoint, timeout_s=10)
        self.control.status()  # ready: the control loop answers

    def _read_stderr(self):
        for line in self.process.stderr:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def stop(self, timeout_s=30):
        """Shuts down over control (kills after timeout_s); returns the exit code."""
        if self.process.poll() is None:
            try:
                self.control.shutdown()
            except livealign.ControlTimeout:
                pass
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.control.close()
        return self.process.returncode

    def kill(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path / "out")
    yield d
    d.stop()


def drifting_series(n_frames, size=96, step_px=(1, 0), noise=0.05, seed=7):
    """Crops of one smooth random field, moved by whole pixels: frame i is
    cropped step_px * i further along, so its content is at shift -step_px * i
    (the shifts.csv convention). Returns (frames float32, true shifts [n, 2])."""
    rng = np.random.default_rng(seed)
    margin = int(max(abs(step_px[0]), abs(step_px[1])) * n_frames) + 2
    big = size + 2 * margin
    field = rng.standard_normal((big, big))
    spectrum = np.fft.fft2(field)
    fy = np.fft.fftfreq(big)[:, None]
    fx = np.fft.fftfreq(big)[None, :]
    field = np.real(np.fft.ifft2(spectrum * np.exp(-(fx ** 2 + fy ** 2) / (2 * 0.04 ** 2))))
    field = (field - field.mean()) / field.std()
    frames, truth = [], []
    for i in range(n_frames):
        dx, dy = int(round(step_px[0] * i)), int(round(step_px[1] * i))
        crop = field[margin + dy:margin + dy + size, margin + dx:margin + dx + size]
        frames.append((crop + noise * rng.standard_normal(crop.shape)).astype(np.float32))
        truth.append((-dx, -dy))
    return frames, np.array(truth, dtype=float)
