"""Nion Swift: live registration of a STEM scan series (UNTESTED here: it needs
Nion Swift with a scan device; only the livealign calls are the tested ones).

Run inside Nion Swift's Python console (Swift ships numpy; add pyzmq and
msgpack to its environment, and python/ of livealign to sys.path). It grabs
frames from the scan device, streams them to `livealign serve`, and shows the
daemon's running average in a new data item when done.
"""

import time

import livealign

SOURCE, PUBLISH, CONTROL = "tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556", "tcp://127.0.0.1:5557"
FRAMES = 50


def run(api):
    scan = api.get_hardware_source_by_id("superscan", version="1.0")
    params = scan.get_default_frame_parameters()
    rows, cols = params["size"]
    pixel_size_A = 10.0 * params["fov_nm"] / cols
    control = livealign.Control(CONTROL)
    results = livealign.Results(PUBLISH, topics=("average", "series_end"))
    results.wait_live(control)
    with livealign.Sender(SOURCE) as sender:
        scan.start_playing(params)
        try:
            first = None
            for i in range(FRAMES):
                xdata = scan.grab_next_to_finish()[0]  # one DataAndMetadata per channel
                if first is None:
                    first = xdata
                    sender.start_series("swift-%d" % int(time.time()), xdata.data.shape,
                                        xdata.data.dtype, pixel_size_A=pixel_size_A,
                                        frame_time_s=params["pixel_time_us"] * rows * cols * 1e-6,
                                        expected_frames=FRAMES)
                sender.send_frame(i, xdata.data, timestamp_s=time.time())
            sender.end_series()
        finally:
            scan.stop_playing()
    average = None
    for m in results:
        if m.topic == "average":
            average = m.data
        elif m.topic == "series_end":
            break
    if average is not None:
        api.library.create_data_item_from_data(average, title="livealign average")
    results.close()
    control.close()


def script_main(api_broker):
    run(api_broker.get_api(version="~1.0", ui_version="~1.0"))
