"""A generic acquisition loop: frames from any detector go to the daemon, the
drift comes back, the average is saved at the end.

Start the daemon first, e.g.
    livealign serve --source-pattern pull --source-bind true --out runs
then run this with Debian's interpreter:
    PYTHONPATH=python /usr/bin/python3 python/examples/generic_acquisition.py

`acquire(i)` stands for the detector: replace it by your microscope's call. As
it is, it crops a random texture that drifts by 0.7 px/frame in x, so the loop
runs (and is tested) without a microscope.
"""

import argparse
import time

import numpy as np

import livealign


class DriftingTexture:
    """Stand-in detector: a smooth random specimen drifting at a constant rate."""

    def __init__(self, size=128, frames=20, step_px=(0.7, -0.3), seed=1):
        rng = np.random.default_rng(seed)
        self.size, self.step_px, self.rng = size, step_px, rng
        big = size + 2 * int(frames * max(map(abs, step_px)) + 4)
        f = np.fft.fftfreq(big)
        spectrum = np.fft.fft2(rng.standard_normal((big, big)))
        self.field = np.real(np.fft.ifft2(spectrum * np.exp(-(f[:, None] ** 2 + f[None, :] ** 2) / 0.003)))
        self.margin = (big - size) // 2

    def acquire(self, i):
        dx, dy = (int(round(s * i)) for s in self.step_px)
        y0, x0 = self.margin + dy, self.margin + dx
        crop = self.field[y0:y0 + self.size, x0:x0 + self.size]
        counts = self.rng.poisson(np.clip(200 * (1 + crop / (3 * self.field.std())), 0, None))
        return counts.astype(np.uint16)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default="tcp://127.0.0.1:5555", help="the daemon's --source")
    p.add_argument("--publish", default="tcp://127.0.0.1:5556", help="the daemon's --publish")
    p.add_argument("--control", default="tcp://127.0.0.1:5557", help="the daemon's --control")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--series", default="example")
    p.add_argument("--average-out", help="save the final average here (.npy)")
    args = p.parse_args()

    detector = DriftingTexture(frames=args.frames)
    control = livealign.Control(args.control)
    print("daemon:", control.status()["state"])
    with livealign.Results(args.publish, topics=("drift", "average", "event", "series_end")) as results, \
            livealign.Sender(args.source) as sender:
        results.wait_live(control)  # the subscription is live before the first frame
        sender.start_series(args.series, (detector.size, detector.size), "uint16",
                            pixel_size_A=0.2, expected_frames=args.frames)
        t0 = time.monotonic()
        for i in range(args.frames):
            sender.send_frame(i, detector.acquire(i), timestamp_s=time.monotonic() - t0)
        sender.end_series()
        average = None
        for m in results:  # until series_end (or 10 s without a message)
            if m.topic == "drift":
                h = m.header
                print("frame %3d  shift (%6.2f, %6.2f) px  latency %5.1f ms%s"
                      % (h["frame"], h["shift_x_px"][-1], h["shift_y_px"][-1], h["latency_ms"],
                         "  final" if h["final"] else ""))
            elif m.topic == "average":
                average = m.data
            elif m.topic == "event" and m.header["level"] != "info":
                print("event:", m.header["code"], m.header["message"])
            elif m.topic == "series_end":
                print("written:", ", ".join(m.header["files"]) or "(no --out)")
                break
    if args.average_out and average is not None:
        np.save(args.average_out, average)
    control.close()


if __name__ == "__main__":
    main()
