"""Scan feedback: each frame is acquired with the scan's field of view moved to
the daemon's prediction of where the specimen will be, so the specimen stays
put (a drift corrector that measures against the whole series, not only the
first frame).

The loop is what runs on a microscope: wait for the previous frame's `drift`
message, set the scan offset to its `predicted_shift_px` (for the frame it
names in `predicted_for_frame`), acquire, and send the frame with the offset
it was taken at (`scan_offset_px`), which the daemon adds back for its next
prediction. `SimulatedScan` stands in for the scan (a drifting random texture,
sub-pixel shifts by Fourier interpolation): replace `set_offset_px` and
`acquire` by your scan's calls (Nion Swift: the frame parameters'
`center_nm`, converted from pixels with the pixel size).

Start the daemon (`livealign serve --source-pattern pull --source-bind true`)
and run, with Debian's interpreter:
    PYTHONPATH=python /usr/bin/python3 python/examples/scan_feedback.py
"""

import argparse
import time

import numpy as np

import livealign


class SimulatedScan:
    """A specimen drifting at a slowly turning velocity under a movable scan."""

    def __init__(self, size=128, seed=2):
        rng = np.random.default_rng(seed)
        self.rng = rng
        f = np.fft.fftfreq(size)
        self.fy, self.fx = f[:, None], f[None, :]
        white = np.fft.fft2(rng.standard_normal((size, size)))
        self.spectrum = white * np.exp(-(self.fx ** 2 + self.fy ** 2) / 0.004)
        self.size = size
        self.offset = np.zeros(2)

    @staticmethod
    def specimen_drift(i):
        """Where the specimen is in frame i (px, frame 0's field of view)."""
        return np.array([6.0 * (1 - np.exp(-i / 15)) + 0.1 * i, -4.0 * (1 - np.exp(-i / 25))])

    def set_offset_px(self, offset_xy):
        self.offset = np.asarray(offset_xy, dtype=float)

    def acquire(self, i):
        # A feature at p appears at p + drift - offset.
        sx, sy = self.specimen_drift(i) - self.offset
        phase = np.exp(-2j * np.pi * (self.fx * sx + self.fy * sy))
        image = np.real(np.fft.ifft2(self.spectrum * phase))
        image = 1000 + 200 * image / image.std()
        return self.rng.poisson(np.clip(image, 0, None)).astype(np.uint16)


def run(source, publish, control_endpoint, frames, feedback=True, series="feedback"):
    """Acquires `frames` frames; returns the specimen's position in each frame
    (relative to frame 0) that the scan left uncorrected."""
    scan = SimulatedScan()
    control = livealign.Control(control_endpoint)
    left = []
    with livealign.Results(publish, topics=("drift",)) as results, livealign.Sender(source) as sender:
        results.wait_live(control)
        sender.start_series(series, (scan.size, scan.size), "uint16", expected_frames=frames)
        t0 = time.monotonic()
        for i in range(frames):
            if feedback and i > 0:
                # The previous frame's drift message predicts this frame.
                m = results.wait_for("drift", 10.0, lambda m: m.header["frame"] == i - 1)
                if m is not None and m.header["predicted_for_frame"] == i and m.header["predicted_shift_px"]:
                    scan.set_offset_px(m.header["predicted_shift_px"])
            sender.send_frame(i, scan.acquire(i), timestamp_s=time.monotonic() - t0,
                              scan_offset_px=scan.offset)
            left.append(scan.specimen_drift(i) - scan.offset)
        sender.end_series()
    control.close()
    return np.array(left)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default="tcp://127.0.0.1:5555")
    p.add_argument("--publish", default="tcp://127.0.0.1:5556")
    p.add_argument("--control", default="tcp://127.0.0.1:5557")
    p.add_argument("--frames", type=int, default=30)
    args = p.parse_args()
    closed = run(args.source, args.publish, args.control, args.frames, feedback=True, series="closed")
    open_loop = run(args.source, args.publish, args.control, args.frames, feedback=False, series="open")
    for name, left in (("with feedback", closed), ("open loop", open_loop)):
        distance = np.hypot(left[:, 0], left[:, 1])
        print("%s: drift left in the frames rms %.3f px, max %.3f px"
              % (name, np.sqrt(np.mean(distance ** 2)), distance.max()))


if __name__ == "__main__":
    main()
