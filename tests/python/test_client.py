"""The Python client (python/livealign) against the real daemon and raw sockets."""

import threading
import time

import numpy as np
import pytest
import zmq

import livealign
from livealign.results import matrices_arrays, mosaic_counts, mosaic_frame0_coordinates
from conftest import Daemon, drifting_series

TIMEOUT_S = 30


def free_endpoint():
    """An endpoint on 127.0.0.1 whose port the OS just handed out (and nothing
    listens on now)."""
    s = zmq.Context.instance().socket(zmq.REP)
    s.bind("tcp://127.0.0.1:*")
    endpoint = s.getsockopt_string(zmq.LAST_ENDPOINT)
    s.close(linger=0)
    return endpoint


def send_series(sender, series, frames, **start):
    sender.start_series(series, frames[0].shape, "float32", expected_frames=len(frames), **start)
    for i, frame in enumerate(frames):
        sender.send_frame(i, frame, timestamp_s=0.5 * i)
    sender.end_series()


def test_full_series_push_gives_drift_average_and_series_end(daemon):
    frames, truth = drifting_series(8, step_px=(1, -1))
    with livealign.Results(daemon.publish, topics=("drift", "average", "series_end")) as results:
        results.wait_live(daemon.control)
        with livealign.Sender(daemon.source) as sender:
            send_series(sender, "py-run", frames, pixel_size_A=0.5, meta={"from": "pytest"})
        drifts, averages = [], []
        end = None
        while end is None:
            m = results.next(TIMEOUT_S)
            assert m is not None, "no series_end within %s s" % TIMEOUT_S
            if m.topic == "drift":
                drifts.append(m)
            elif m.topic == "average":
                averages.append(m)
            else:
                end = m
    assert [d.header["frame"] for d in drifts if not d.header["final"]] == list(range(8))
    # Each frame's drift predicts the next frame's measured shift (the drift
    # is constant, so closely).
    for d, after in zip(drifts[2:-2], drifts[3:-1]):
        h, measured = d.header, after.header
        assert h["predicted_for_frame"] == h["frame"] + 1 == measured["frame"]
        np.testing.assert_allclose(h["predicted_shift_px"],
                                   [measured["shift_x_px"][-1], measured["shift_y_px"][-1]], atol=0.1)
        assert 0 <= h["prediction_sigma_px"] < 0.1
    assert drifts[0].header["predicted_shift_px"] is None
    final = drifts[-1].header
    assert final["final"] and final["series"] == "py-run"
    shifts = np.column_stack([final["shift_x_px"], final["shift_y_px"]])
    np.testing.assert_allclose(shifts, truth, atol=0.25)
    assert averages, "no average message"
    last = averages[-1]
    assert last.data.dtype == np.float32 and last.data.shape == frames[0].shape
    assert last.header["n_frames"] == 8
    assert end.header["n_frames"] == 8 and end.header["frames_sent"] == 8
    assert "shifts.csv" in " ".join(end.header["files"])
    assert daemon.control.status()["frames_accepted"] == 8


def test_pub_sender_bound_with_daemon_subscribing(tmp_path):
    frames, truth = drifting_series(5, step_px=(0, 2))
    with livealign.Sender("tcp://127.0.0.1:*", pattern="pub", bind=True) as sender:
        d = Daemon(tmp_path / "out", source=sender.endpoint, source_pattern="sub")
        try:
            with livealign.Results(d.publish, topics=("drift",)) as results:
                results.wait_live(d.control)
                assert sender.wait_for_receiver(TIMEOUT_S)
                send_series(sender, 17, frames)
                final = results.wait_for("drift", TIMEOUT_S, lambda m: m.header["final"])
            assert final is not None and final.header["series"] == 17
            np.testing.assert_allclose(final.header["shift_y_px"], truth[:, 1], atol=0.25)
        finally:
            assert d.stop() == 0


def test_control_calls_return_reply_dicts(daemon):
    frames, _ = drifting_series(4)
    status = daemon.control.status()
    assert status["ok"] and status["state"] == "idle" and status["protocol"] == livealign.PROTOCOL_VERSION
    with livealign.Results(daemon.publish, topics=("drift",)) as results:
        results.wait_live(daemon.control)
        with livealign.Sender(daemon.source) as sender:
            sender.start_series("ctl", frames[0].shape, "float32")
            for i, frame in enumerate(frames):
                sender.send_frame(i, frame)
            last = results.wait_for("drift", TIMEOUT_S, lambda m: m.header["frame"] == 3)
            assert last is not None
            # The daemon records the latest drift for snapshot just after
            # publishing it, so the snapshot may lag the message briefly.
            deadline = time.monotonic() + TIMEOUT_S
            snapshot = daemon.control.snapshot()
            while snapshot["drift"]["frame"] != 3 and time.monotonic() < deadline:
                snapshot = daemon.control.snapshot()
            assert snapshot["drift"]["frame"] == 3 and snapshot["drift"]["series"] == "ctl"
            saved = daemon.control.save()
            assert saved["series"] == "ctl" and any(f.endswith("shifts.csv") for f in saved["files"])
            assert daemon.control.status()["state"] == "running"
            reset = daemon.control.reset()
            assert reset["discarded_series"] == "ctl" and reset["discarded_frames"] == 4
    assert daemon.control.status()["state"] == "idle"
    assert daemon.control.shutdown()["stopping"] is True
    assert daemon.process.wait(timeout=TIMEOUT_S) == 0


def test_control_timeout_raises_and_the_client_stays_usable():
    endpoint = free_endpoint()
    control = livealign.Control(endpoint, timeout_s=0.3)
    with pytest.raises(livealign.ControlTimeout, match="status.*no reply"):
        control.status()
    # A server appears: the next call must work (a REQ socket left waiting
    # for its lost reply could not send again).
    rep = zmq.Context.instance().socket(zmq.REP)
    rep.bind(endpoint)

    def answer_once():
        request = livealign.wire.unpack(rep.recv())
        rep.send(livealign.wire.pack({"ok": True, "error": "", "echo": request["cmd"]}))

    server = threading.Thread(target=answer_once)
    server.start()
    assert control.status(timeout_s=TIMEOUT_S)["echo"] == "status"
    server.join(TIMEOUT_S)
    rep.close(linger=0)
    control.close()


def test_control_error_reply_raises(daemon):
    with pytest.raises(livealign.ControlError, match="unknown_cmd"):
        daemon.control.request("no-such-command")
    assert daemon.control.request("no-such-command", check=False)["ok"] is False


def test_results_next_times_out_with_none(daemon):
    with livealign.Results(daemon.publish, topics=("average",), iter_timeout_s=0.2) as results:
        assert results.next(0.2) is None
        assert list(results) == []  # iteration ends after iter_timeout_s without a message


def test_context_managers_close_their_sockets(daemon):
    with livealign.Sender(daemon.source) as sender, \
            livealign.Results(daemon.publish) as results, \
            livealign.Control(daemon.control_endpoint) as control:
        assert control.status()["ok"]
    assert sender._socket.closed and results._socket.closed and control._socket.closed
    with pytest.raises(zmq.ZMQError):
        sender._socket.send(b"x")


def test_multichannel_frames_have_one_part_per_channel_in_order():
    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    endpoint = pull.getsockopt_string(zmq.LAST_ENDPOINT)
    rng = np.random.default_rng(3)
    haadf = rng.integers(0, 60000, (4, 6)).astype(np.uint16)
    abf = rng.integers(0, 60000, (4, 6)).astype(">u2")  # big-endian in, little on the wire
    with livealign.Sender(endpoint) as sender:
        sender.start_series("two", (4, 6), np.uint16, channels=["HAADF", "ABF"],
                            register_channel="ABF", frame_time_s=0.25, pixel_size_A=[0.3, 0.4])
        sender.send_frame(0, {"ABF": abf, "HAADF": haadf}, timestamp_s=1.5)
        sender.end_series()
        parts = [pull.recv_multipart() for _ in range(3)]
    pull.close(linger=0)
    start = livealign.wire.unpack(parts[0][0])
    assert len(parts[0]) == 1
    assert start == {"htype": "series_start", "series": "two", "shape": [4, 6], "dtype": "uint16",
                     "frame_time_s": 0.25, "pixel_size_A": [0.3, 0.4],
                     "channels": ["HAADF", "ABF"], "register_channel": "ABF"}
    frame = parts[1]
    assert len(frame) == 3
    header = livealign.wire.unpack(frame[0])
    assert header["channels"] == ["HAADF", "ABF"] and header["frame"] == 0
    assert header["timestamp_s"] == 1.5 and header["dtype"] == "uint16"
    assert frame[1] == haadf.astype("<u2").tobytes()
    assert frame[2] == abf.astype("<u2").tobytes()
    assert livealign.wire.unpack(parts[2][0]) == {"htype": "series_end", "series": "two", "frames": 1}


def test_sender_refuses_frames_that_do_not_fit_the_series():
    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    with livealign.Sender(pull.getsockopt_string(zmq.LAST_ENDPOINT)) as sender:
        with pytest.raises(RuntimeError, match="start_series"):
            sender.send_frame(0, np.zeros((4, 4), np.float32))
        sender.start_series(1, (4, 4), "float32", channels=["a", "b"])
        with pytest.raises(ValueError, match="shape"):
            sender.send_frame(0, {"a": np.zeros((4, 5), np.float32), "b": np.zeros((4, 5), np.float32)})
        with pytest.raises(ValueError, match="dtype"):
            sender.send_frame(0, {"a": np.zeros((4, 4), np.uint16), "b": np.zeros((4, 4), np.uint16)})
        with pytest.raises(ValueError, match="channels"):
            sender.send_frame(0, {"a": np.zeros((4, 4), np.float32)})
        with pytest.raises(ValueError, match="dict"):
            sender.send_frame(0, np.zeros((4, 4), np.float32))
        with pytest.raises(ValueError, match="register_channel"):
            sender.start_series(1, (4, 4), "float32", channels=["a"], register_channel="b")
    pull.close(linger=0)


def test_matrices_message_decodes_to_arrays(daemon):
    frames, truth = drifting_series(4, step_px=(2, 0))
    with livealign.Results(daemon.publish, topics=("matrices",)) as results:
        results.wait_live(daemon.control)
        with livealign.Sender(daemon.source) as sender:
            send_series(sender, "m", frames)
        m = results.wait_for("matrices", TIMEOUT_S, lambda m: m.header["k"] == 4)
    assert m is not None
    x, y, status = matrices_arrays(m.header)
    assert x.shape == (4, 4) and status.dtype == np.uint8
    np.testing.assert_allclose(x[0, 3], truth[3, 0] - truth[0, 0], atol=0.25)


def test_mosaic_message_holds_the_frames_the_drift_carried_away(daemon):
    # 12 frames of 96^2 moving 8 px a frame: the last sees frame-0 columns
    # 88 to 184, mostly outside frame 0's window.
    frames, truth = drifting_series(12, step_px=(8, 0))
    with livealign.Results(daemon.publish, topics=("mosaic",)) as results:
        results.wait_live(daemon.control)
        with livealign.Sender(daemon.source) as sender:
            send_series(sender, "mosaic", frames)
        m = results.wait_for("mosaic", TIMEOUT_S, lambda m: m.header["n_frames"] == 12)
    assert m is not None
    h = m.header
    assert h["bin"] == 1 and m.data.shape == tuple(h["shape"])
    row0, row1, col0, col1 = h["extent"]
    assert col1 - col0 >= 96 + 88 - 4
    counts = mosaic_counts(h)
    assert counts.shape == m.data.shape and counts.max() >= 10
    rows, cols = mosaic_frame0_coordinates(h)
    assert rows[0, 0] == row0 and cols[0, -1] == col1 - 1
    # Where the shifts put the last frame, the mosaic shows what it saw.
    dx = int(-truth[-1, 0])
    last = frames[-1][8:88, 8:88]
    seen = m.data[8 - row0:88 - row0, dx + 8 - col0:dx + 88 - col0]
    assert np.corrcoef(last.ravel(), seen.ravel())[0, 1] > 0.9
    assert (counts[8 - row0:88 - row0, dx + 8 - col0:dx + 88 - col0] >= 1).all()


def test_generic_acquisition_example_runs_against_the_daemon(daemon, tmp_path):
    import subprocess
    import sys
    from conftest import ROOT
    out = tmp_path / "average.npy"
    run = subprocess.run(
        [sys.executable, str(ROOT / "python" / "examples" / "generic_acquisition.py"),
         "--source", daemon.source, "--publish", daemon.publish, "--control", daemon.control_endpoint,
         "--frames", "6", "--average-out", str(out)],
        capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT / "python")})
    assert run.returncode == 0, run.stderr
    assert "written:" in run.stdout and "final" in run.stdout
    assert np.load(out).shape == (128, 128)


def test_scan_feedback_example_keeps_the_specimen_in_place(daemon):
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("scan_feedback", ROOT / "python" / "examples" / "scan_feedback.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    closed = example.run(daemon.source, daemon.publish, daemon.control_endpoint, 20, feedback=True)
    open_loop = example.run(daemon.source, daemon.publish, daemon.control_endpoint, 20, feedback=False)
    rms = lambda left: float(np.sqrt(np.mean(np.sum(left ** 2, axis=1))))  # noqa: E731
    assert rms(open_loop) > 3.0
    assert rms(closed) < 0.2 * rms(open_loop), (rms(closed), rms(open_loop))


def test_two_channel_series_registers_on_one_and_averages_both(daemon):
    frames, truth = drifting_series(6, step_px=(1, 1))
    # The second detector sees inverted contrast (a bright-field-like signal).
    inverted = [np.float32(5.0) - f for f in frames]
    with livealign.Results(daemon.publish, topics=("drift", "average", "series_end")) as results:
        results.wait_live(daemon.control)
        with livealign.Sender(daemon.source) as sender:
            sender.start_series("two", frames[0].shape, "float32", channels=["HAADF", "BF"],
                                register_channel="HAADF", expected_frames=6)
            for i in range(6):
                sender.send_frame(i, {"HAADF": frames[i], "BF": inverted[i]}, timestamp_s=0.5 * i)
            sender.end_series()
        averages, final = {}, None
        while True:
            m = results.next(TIMEOUT_S)
            assert m is not None, "no series_end"
            if m.topic == "average":
                averages[m.header["channel"]] = m
            elif m.topic == "drift" and m.header["final"]:
                final = m
            elif m.topic == "series_end":
                break
    assert set(averages) == {"HAADF", "BF"}
    np.testing.assert_allclose(final.header["shift_x_px"], truth[:, 0], atol=0.25)
    haadf, bf = averages["HAADF"], averages["BF"]
    assert haadf.data.shape == bf.data.shape == frames[0].shape
    # Averaged with the same shifts: the BF average is the inverted HAADF one
    # where both are covered by every frame.
    r0, r1, c0, c1 = haadf.header["valid"]
    np.testing.assert_allclose(bf.data[r0:r1, c0:c1], 5.0 - haadf.data[r0:r1, c0:c1], atol=1e-3)
