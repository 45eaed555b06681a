// livealign live preview. Receives the daemon's result messages over the
// WebSocket at /ws, each a msgpack array [topic, header map, data (bin, optional)]
// (the same messages ZeroMQ subscribers get; docs/protocol.md), and draws them.
// Plain JS, no build step; msgpack decoding by @msgpack/msgpack (msgpack.min.js).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // Everything the page knows; exposed as window.livealign.state for tests.
  const state = {
    connected: false,
    reconnects: 0,
    series: null,
    drift: null,       // latest drift header
    average: null,     // {header, pixels: Float32Array, rows, cols} of the shown channel
    averages: {},      // several detectors: the latest average of each channel, by name
    channels: [],      // the series' channel names (empty: one unnamed channel)
    channel: null,     // the channel shown (null: the unnamed one)
    frame: null,       // latest raw frame, same form as average
    mosaic: null,      // the whole drift extent, binned: as average plus counts (Uint16Array) and bin
    mosaics: {},       // several detectors: the latest mosaic of each channel, by name
    spectrum: null,    // {n, values: Float32Array (log power, centred), source: 'browser'|'daemon'}
    quality: null,     // latest quality header
    matrices: null,    // the overview: {k, i0, j0, block, n, n_frames, x, y, status} (n x n cells)
    matricesWindow: null,   // the full-resolution window shown instead, same form; null: the overview
    matricesWindowWanted: null,  // {i0, j0, n} asked for (windows others asked for are ignored)
    matricesWindowRequests: 0,   // requests sent
    matricesRenderMs: null,      // time of the last RenderMatrices (performance.now())
    maxMatricesRenderMs: 0,      // the longest one since the page opened
    matricesRenders: [],         // the last 100: {k, n, block, ms}
    events: [],        // newest last
    seriesEnd: null,
    counts: {},        // messages received per topic
    lastDriftAt: 0,    // performance.now() of the latest drift message
    lastRenderAt: 0,   // performance.now() of the latest render
    maxDriftToRenderMs: 0,  // longest wait from a drift message to the redraw showing it
    driftToRenderMs: [],    // the last 1000 such waits
    firstDriftFrames: null, // n_frames of the first drift message since the page opened
    pixelSizeA: null,  // number (Å/px) when known
  };
  window.livealign = { state };

  // View state of the image panel (not data).
  const view = {
    source: 'average',            // 'average' | 'mosaic' | 'frame'
    contrast: 'auto',             // 'auto' | 'manual'
    manualMin: 0, manualMax: 1,
    zoom: 1, panX: 0, panY: 0,    // image px -> canvas px: canvas = (img - pan) * zoom * fit
    fitted: true,
    unit: 'px',                   // drift unit, 'px' | 'A'
  };

  // ---------------------------------------------------------------------------
  // Connection: reconnect with exponential backoff when the daemon goes away.

  let socket = null;
  let backoffMs = 500;
  const kMaxBackoffMs = 5000;

  function Connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    SetConnection('connecting…', false);
    socket = new WebSocket(`${scheme}://${location.host}/ws`);
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      state.connected = true;
      backoffMs = 500;
      SetConnection('live', true);
      // The server sends the latest message of every topic on connect (the
      // snapshot), so a page opened mid-series fills in at once.
    };
    socket.onmessage = (event) => {
      try {
        OnMessage(event.data);
      } catch (error) {
        console.error('livealign: bad message', error);
      }
    };
    socket.onclose = () => {
      state.connected = false;
      const wait = backoffMs;
      backoffMs = Math.min(kMaxBackoffMs, backoffMs * 2);
      SetConnection(`disconnected — retry in ${(wait / 1000).toFixed(1)} s`, false);
      setTimeout(() => { state.reconnects++; Connect(); }, wait);
    };
    socket.onerror = () => { /* onclose follows */ };
  }

  function SetConnection(text, up) {
    const el = $('connection');
    el.textContent = text;
    el.className = 'pill ' + (up ? 'pill-up' : 'pill-down');
  }

  // ---------------------------------------------------------------------------
  // Messages.

  function OnMessage(buffer) {
    if (typeof MessagePack === 'undefined') throw new Error('msgpack library missing');
    const message = MessagePack.decode(new Uint8Array(buffer));
    if (!Array.isArray(message) || message.length < 2) return;
    const [topic, header, data] = message;
    if (typeof topic !== 'string' || header === null || typeof header !== 'object') return;
    state.counts[topic] = (state.counts[topic] || 0) + 1;
    if (header.series !== undefined && header.series !== null && topic !== 'event') {
      NoteSeries(header.series);
    }
    switch (topic) {
      case 'drift': OnDrift(header); break;
      case 'average': OnAverage(header, data); break;
      case 'mosaic': OnMosaic(header, data); break;
      case 'frame': state.frame = DecodeImage(header, data); if (view.source === 'frame') dirty.image = true; break;
      case 'spectrum': OnSpectrum(header, data); break;
      case 'quality': OnQuality(header); break;
      case 'matrices': OnMatrices(header); break;
      case 'matrices_window': OnMatricesWindow(header); break;
      case 'event': OnEvent(header); break;
      case 'series_end': state.seriesEnd = header; OnEvent({ level: 'info', code: 'series_end',
        message: `series ${header.series} ended with ${header.n_frames} frames`, series: header.series }); break;
      default: break;  // topics added later are ignored
    }
    ScheduleRender();
  }

  // A new series clears what belongs to the previous one (events stay).
  function NoteSeries(series) {
    if (state.series !== null && String(series) === String(state.series)) return;
    state.series = series;
    state.drift = null; state.average = null; state.frame = null; state.spectrum = null;
    state.averages = {}; state.channels = []; state.channel = null;
    state.mosaic = null; state.mosaics = {};
    RenderChannelSwitch();
    state.quality = null; state.matrices = null; state.seriesEnd = null;
    state.matricesWindow = null; state.matricesWindowWanted = null;
    state.pixelSizeA = null;
    $('unit-A').disabled = true;
    if (view.unit === 'A') SetUnit('px');
    view.fitted = true;
    $('series').textContent = String(series);
    Object.keys(dirty).forEach((k) => { dirty[k] = true; });
  }

  // Several detectors (docs/protocol.md, "Channels"): one average per channel,
  // each with `channel` and `channels`; the page shows the chosen one (the
  // first channel until the user picks another).
  function OnAverage(header, data) {
    const image = DecodeImage(header, data);
    if (!image) return;
    const channel = typeof header.channel === 'string' ? header.channel : null;
    if (channel === null) {
      state.average = image;
      dirty.image = dirty.spectrum = true;
      return;
    }
    state.averages[channel] = image;
    const names = Array.isArray(header.channels) ? header.channels.map(String) : [channel];
    if (names.join('\n') !== state.channels.join('\n')) {
      state.channels = names;
      if (!names.includes(state.channel)) state.channel = names[0];
      RenderChannelSwitch();
    }
    if (channel === state.channel) {
      state.average = image;
      dirty.image = dirty.spectrum = true;
    }
  }

  // `mosaic` (docs/protocol.md): the union of every frame's footprint,
  // binned by `bin`; `counts` is the fewest frames covering each binned
  // pixel, `valid` the best-covered region and `window` frame 0's window, in
  // its pixels. One per channel, like `average`.
  function OnMosaic(header, data) {
    const image = DecodeImage(header, data);
    if (!image) return;
    const counts = header.counts;
    if (!(counts instanceof Uint8Array) || counts.byteLength !== 2 * image.rows * image.cols) {
      console.warn('livealign: mosaic counts do not match its shape', header);
      return;
    }
    image.counts = new Uint16Array(counts.slice().buffer);
    image.bin = Number(header.bin) > 0 ? Number(header.bin) : 1;
    const channel = typeof header.channel === 'string' ? header.channel : null;
    if (channel !== null) state.mosaics[channel] = image;
    if (channel === null || channel === state.channel) {
      state.mosaic = image;
      if (view.source === 'mosaic') dirty.image = true;
    }
  }

  function ShowChannel(channel) {
    state.channel = channel;
    state.average = state.averages[channel] || null;
    state.mosaic = state.mosaics[channel] || null;
    RenderChannelSwitch();
    dirty.image = dirty.spectrum = true;
    ScheduleRender();
  }

  // One button per channel; hidden for a single channel.
  function RenderChannelSwitch() {
    const box = $('channel-switch');
    box.hidden = state.channels.length < 2;
    box.replaceChildren(...state.channels.map((name) => {
      const button = document.createElement('button');
      button.textContent = name;
      button.dataset.channel = name;
      button.className = name === state.channel ? 'on' : '';
      button.onclick = () => ShowChannel(name);
      return button;
    }));
  }

  function OnDrift(header) {
    state.drift = header;
    if (state.firstDriftFrames === null) state.firstDriftFrames = Number(header.n_frames);
    state.lastDriftAt = performance.now();
    if (driftPendingSince === null) driftPendingSince = state.lastDriftAt;
    if (header.pixel_size_A !== undefined) SetPixelSize(header.pixel_size_A);
    else PixelSizeFromRates(header);
    dirty.drift = dirty.header = true;
  }

  // The daemon's quality says `valid`/`verdict` (docs/protocol.md); the page
  // also accepts `good`/`reason`. A real-space `lattice` {a_px, b_px} is turned
  // into reciprocal vectors when `lattice_reciprocal` is not given.
  function OnQuality(header) {
    state.quality = header;
    if (typeof header.good !== 'boolean' && typeof header.valid === 'boolean') header.good = header.valid;
    if (header.reason === undefined && typeof header.verdict === 'string') header.reason = header.verdict;
    if (!Array.isArray(header.lattice_reciprocal) && header.lattice && typeof header.lattice === 'object') {
      const reciprocal = ReciprocalBasis(header.lattice.a_px, header.lattice.b_px);
      if (reciprocal) header.lattice_reciprocal = reciprocal;
    }
    if (header.pixel_size_A !== undefined) SetPixelSize(header.pixel_size_A);
    else PixelSizeFromRates(header);
    dirty.quality = dirty.spectrum = dirty.header = true;
  }

  // Reciprocal basis [a*, b*] (cycles/px) of the real-space basis a, b (px):
  // a*·a = b*·b = 1, a*·b = b*·a = 0. Null when degenerate.
  function ReciprocalBasis(a, b) {
    if (!Array.isArray(a) || !Array.isArray(b)) return null;
    const det = a[0] * b[1] - a[1] * b[0];
    if (!(Math.abs(det) > 1e-9)) return null;
    return [[b[1] / det, -b[0] / det], [-a[1] / det, a[0] / det]];
  }

  // Without an explicit pixel size, the ratio of the drift rates in Å/s and
  // px/s (both published by the daemon) is the pixel size.
  function PixelSizeFromRates(header) {
    if (state.pixelSizeA !== null) return;
    const a = header.drift_rate_A_per_s, p = header.drift_rate_px_per_s;
    if (!Array.isArray(a) || !Array.isArray(p)) return;
    const pa = Math.hypot(Number(a[0]), Number(a[1])), pp = Math.hypot(Number(p[0]), Number(p[1]));
    if (pp > 1e-9 && Number.isFinite(pa / pp)) SetPixelSize(pa / pp);
  }

  // pixel_size_A is a number or [y, x]; the drift plot uses x (they are equal
  // on every scan generator we know of).
  function SetPixelSize(value) {
    let size = null;
    if (typeof value === 'number') size = value;
    else if (Array.isArray(value) && value.length === 2) size = Number(value[1]);
    state.pixelSizeA = Number.isFinite(size) && size > 0 ? size : null;
    $('unit-A').disabled = state.pixelSizeA === null;
    if (state.pixelSizeA === null && view.unit === 'A') SetUnit('px');
  }

  const kDtypes = {
    float32: Float32Array, float64: Float64Array, uint8: Uint8Array, uint16: Uint16Array,
    uint32: Uint32Array, int16: Int16Array, int32: Int32Array,
  };

  // {header, pixels: Float32Array, rows, cols} or null when the data part does
  // not match the header (then the message is ignored).
  function DecodeImage(header, data) {
    if (!(data instanceof Uint8Array) || !Array.isArray(header.shape)) return null;
    const [rows, cols] = header.shape.map(Number);
    const Type = kDtypes[header.dtype || 'float32'];
    if (!Type || !(rows > 0 && cols > 0) || data.byteLength !== rows * cols * Type.BYTES_PER_ELEMENT) {
      console.warn('livealign: image message does not match its header', header);
      return null;
    }
    // Copy: the decoded bin is a view into the message at any alignment.
    const typed = new Type(data.slice().buffer);
    const pixels = typed instanceof Float32Array ? typed : Float32Array.from(typed);
    return { header, pixels, rows, cols };
  }

  function OnSpectrum(header, data) {
    const image = DecodeImage(header, data);
    if (!image || image.rows !== image.cols) return;
    // A daemon-computed spectrum says how many image px one of its px spans
    // (`scale`, default 1), as the browser's own does.
    const scale = Number(header.scale) > 0 ? Number(header.scale) : 1;
    state.spectrum = { n: image.rows, crop: image.rows * scale, scale, values: image.pixels, source: 'daemon' };
    dirty.spectrum = true;
  }

  // A `matrices` or `matrices_window` map (docs/protocol.md): n x n cells,
  // cell (r, c) covering frames i0 + r*block and j0 + c*block onwards; null
  // when malformed.
  function DecodeMatrixView(header) {
    const k = Number(header.k), n = Number(header.n), block = Number(header.block);
    const i0 = Number(header.i0), j0 = Number(header.j0);
    const asFloats = (bin) => (bin instanceof Uint8Array && bin.byteLength === n * n * 4)
      ? new Float32Array(bin.slice().buffer) : null;
    const x = asFloats(header.x), y = asFloats(header.y);
    const status = header.status instanceof Uint8Array && header.status.byteLength === n * n ? header.status : null;
    if (!(k > 0) || !(n > 0) || !(block > 0) || !(i0 >= 0) || !(j0 >= 0) || !x || !y || !status) {
      console.warn('livealign: malformed matrices message');
      return null;
    }
    return { k, n, block, i0, j0, n_frames: header.n_frames, x, y, status };
  }

  function OnMatrices(header) {
    const m = DecodeMatrixView(header);
    if (!m) return;
    state.matrices = m;
    // A window shown stays live: asked for again with each overview.
    if (state.matricesWindowWanted) SendMatricesWindowRequest(state.matricesWindowWanted);
    dirty.matrices = true;
  }

  function OnMatricesWindow(header) {
    const w = state.matricesWindowWanted;
    if (!w || Number(header.i0) !== w.i0 || Number(header.j0) !== w.j0 || Number(header.n) !== w.n) return;
    const m = DecodeMatrixView(header);
    if (!m) return;
    state.matricesWindow = m;
    dirty.matrices = true;
  }

  // Full-resolution window side the page asks for (the daemon allows up to 256).
  const kMatricesWindowSize = 64;

  function SendMatricesWindowRequest(w) {
    if (!socket || socket.readyState !== WebSocket.OPEN || typeof MessagePack === 'undefined') return;
    socket.send(MessagePack.encode({ cmd: 'matrices_window', i0: w.i0, j0: w.j0, n: w.n }));
    state.matricesWindowRequests++;
  }

  // A click on the overview asks for the window around the frames under it;
  // a click on a window goes back to the overview.
  function OnMatrixClick(event) {
    const m = state.matrices;
    if (!m) return;
    if (state.matricesWindowWanted) {
      state.matricesWindowWanted = null;
      state.matricesWindow = null;
      dirty.matrices = true;
      ScheduleRender();
      return;
    }
    const rect = event.currentTarget.getBoundingClientRect();
    const size = Math.min(rect.width, rect.height);
    const u = (event.clientX - rect.left - (rect.width - size) / 2) / size;
    const v = (event.clientY - rect.top - (rect.height - size) / 2) / size;
    if (!(u >= 0 && u < 1 && v >= 0 && v < 1)) return;
    const frameI = m.i0 + Math.floor(v * m.n) * m.block + Math.floor(m.block / 2);
    const frameJ = m.j0 + Math.floor(u * m.n) * m.block + Math.floor(m.block / 2);
    const n = Math.min(kMatricesWindowSize, m.k);
    const corner = (f) => Math.max(0, Math.min(m.k - n, f - Math.floor(n / 2)));
    state.matricesWindowWanted = { i0: corner(frameI), j0: corner(frameJ), n };
    SendMatricesWindowRequest(state.matricesWindowWanted);
    dirty.matrices = true;
    ScheduleRender();
  }

  const kMaxEvents = 300;
  function OnEvent(header) {
    state.events.push({
      level: String(header.level || 'info'), code: String(header.code || ''),
      message: String(header.message || ''), series: header.series, frame: header.frame,
      at: new Date(),
    });
    if (state.events.length > kMaxEvents) state.events.splice(0, state.events.length - kMaxEvents);
    dirty.events = true;
  }

  // ---------------------------------------------------------------------------
  // Rendering: messages mark what changed; one animation frame redraws it.

  const dirty = { header: true, image: true, spectrum: true, drift: true, matrices: true, quality: true, events: true };
  let renderPending = false;
  let driftPendingSince = null;  // arrival of the oldest drift message not yet drawn

  function ScheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => {
      renderPending = false;
      Render();
    });
  }

  function Render() {
    if (dirty.header) { RenderHeader(); dirty.header = false; }
    if (dirty.spectrum) { ComputeSpectrum(); }
    if (dirty.image) { RenderImage(); dirty.image = false; }
    if (dirty.spectrum) { RenderSpectrum(); dirty.spectrum = false; }
    if (dirty.drift) { RenderDrift(); dirty.drift = false; }
    if (dirty.matrices) { RenderMatrices(); dirty.matrices = false; }
    if (dirty.quality) { RenderQuality(); dirty.quality = false; }
    if (dirty.events) { RenderEvents(); dirty.events = false; }
    state.lastRenderAt = performance.now();
    if (driftPendingSince !== null) {
      const wait = state.lastRenderAt - driftPendingSince;
      state.maxDriftToRenderMs = Math.max(state.maxDriftToRenderMs, wait);
      state.driftToRenderMs.push(wait);
      if (state.driftToRenderMs.length > 1000) state.driftToRenderMs.shift();
      driftPendingSince = null;
    }
  }

  const Fmt = (v, digits = 3) => (typeof v === 'number' && Number.isFinite(v)) ? v.toFixed(digits) : '—';
  const Num = (v) => (typeof v === 'number' && Number.isFinite(v)) ? v : null;

  function RenderHeader() {
    const d = state.drift;
    const n = d ? Number(d.n_frames) || 0 : 0;
    const counter = $('frame-count');
    counter.textContent = String(n);
    counter.dataset.nFrames = String(n);
    $('latency').textContent = d && Num(d.latency_ms) !== null ? `${d.latency_ms.toFixed(1)} ms` : '—';
    const rate = d && Array.isArray(d.drift_rate_A_per_s) ? d.drift_rate_A_per_s : null;
    const ratePx = d && Array.isArray(d.drift_rate_px_per_s) ? d.drift_rate_px_per_s : null;
    $('drift-rate').textContent = rate
      ? `x ${Fmt(rate[0], 2)}, y ${Fmt(rate[1], 2)} Å/s`
      : ratePx ? `x ${Fmt(ratePx[0], 2)}, y ${Fmt(ratePx[1], 2)} px/s` : '—';
    const q = state.quality;
    const verdict = $('verdict');
    if (q && typeof q.good === 'boolean') {
      verdict.textContent = q.good ? 'good' : 'not good';
      verdict.className = 'pill ' + (q.good ? 'pill-good' : 'pill-bad');
      verdict.title = q.reason || '';
    } else {
      verdict.textContent = 'no verdict yet';
      verdict.className = 'pill pill-unknown';
    }
  }

  // Sizes a canvas's backing store to its box (device pixels) and returns a 2D
  // context drawing in CSS pixels.
  function Fit(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
    return { ctx, w: canvas.clientWidth, h: canvas.clientHeight };
  }

  // Value at quantile q of a sample of `values` (inside rect when given).
  function Percentiles(values, cols, rect, qs) {
    const [r0, r1, c0, c1] = rect;
    const count = (r1 - r0) * (c1 - c0);
    const step = Math.max(1, Math.floor(Math.sqrt(count / 65536)));
    const sample = [];
    for (let r = r0; r < r1; r += step) {
      for (let c = c0; c < c1; c += step) {
        const v = values[r * cols + c];
        if (Number.isFinite(v)) sample.push(v);
      }
    }
    if (sample.length === 0) return qs.map(() => 0);
    const sorted = Float32Array.from(sample).sort();
    return qs.map((q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))]);
  }

  function ValidRect(image, key = 'valid') {
    const v = image.header[key];
    if (Array.isArray(v) && v.length === 4) {
      const [r0, r1, c0, c1] = v.map(Number);
      if (r0 >= 0 && r1 <= image.rows && c0 >= 0 && c1 <= image.cols && r1 > r0 && c1 > c0) return [r0, r1, c0, c1];
    }
    return [0, image.rows, 0, image.cols];
  }

  // ---- image --------------------------------------------------------------

  const imageBitmap = document.createElement('canvas');  // the image at 1:1, grey
  let imageKey = null;  // which image imageBitmap holds

  function CurrentImage() {
    return view.source === 'frame' ? state.frame : view.source === 'mosaic' ? state.mosaic : state.average;
  }

  const kSourceTitles = { average: 'Average', mosaic: 'Mosaic', frame: 'Latest frame' };
  const kSourceWaiting = {
    average: 'waiting for the first average…',
    mosaic: 'no mosaic yet (the daemon sends it with each average, unless --mosaic-max-px is 0)',
    frame: 'no raw frame published (the daemon sends them rate-limited, when enabled)',
  };

  function RenderImage() {
    const canvas = $('image-canvas');
    const { ctx, w, h } = Fit(canvas);
    const image = CurrentImage();
    $('image-title').textContent = kSourceTitles[view.source] +
      (view.source !== 'frame' && state.channel !== null ? ` — ${state.channel}` : '');
    if (!image) {
      $('image-info').textContent = kSourceWaiting[view.source];
      return;
    }
    const rect = ValidRect(image);
    let lo, hi;
    if (view.contrast === 'auto') {
      // Percentiles once per image (not on every pan/zoom redraw).
      if (image.auto === undefined) image.auto = Percentiles(image.pixels, image.cols, rect, [0.005, 0.995]);
      [lo, hi] = image.auto;
      view.manualMin = lo; view.manualMax = hi;
      $('contrast-min').value = Number(lo.toPrecision(5));
      $('contrast-max').value = Number(hi.toPrecision(5));
    } else {
      lo = view.manualMin; hi = view.manualMax;
    }
    const key = `${view.source}|${image.header.channel}|${image.header.n_frames}|${image.header.frame}|${lo}|${hi}|${image.pixels.length}`;
    if (key !== imageKey) {
      imageKey = key;
      imageBitmap.width = image.cols; imageBitmap.height = image.rows;
      const bctx = imageBitmap.getContext('2d');
      const out = bctx.createImageData(image.cols, image.rows);
      const scale = hi > lo ? 255 / (hi - lo) : 0;
      const [r0, r1, c0, c1] = rect;
      const counts = image.counts;  // mosaic only
      for (let r = 0; r < image.rows; r++) {
        const inRows = r >= r0 && r < r1;
        for (let c = 0; c < image.cols; c++) {
          const i = r * image.cols + c;
          let g = (image.pixels[i] - lo) * scale;
          g = g < 0 ? 0 : g > 255 ? 255 : g;
          if (!Number.isFinite(g)) g = 0;
          // The average: outside the valid rectangle (not covered by every
          // frame) dimmed. The mosaic: where no frame covers, black.
          if (counts) { if (counts[i] === 0) g = 0; } else if (!(inRows && c >= c0 && c < c1)) g *= 0.35;
          out.data[4 * i] = out.data[4 * i + 1] = out.data[4 * i + 2] = g;
          out.data[4 * i + 3] = 255;
        }
      }
      bctx.putImageData(out, 0, 0);
    }
    const fit = Math.min(w / image.cols, h / image.rows);
    if (view.fitted) {
      view.zoom = 1;
      view.panX = (image.cols - w / fit) / 2;
      view.panY = (image.rows - h / fit) / 2;
    }
    const s = fit * view.zoom;
    ctx.imageSmoothingEnabled = s < 2;
    ctx.drawImage(imageBitmap, -view.panX * s, -view.panY * s, image.cols * s, image.rows * s);
    // Valid rectangle outline.
    ctx.strokeStyle = 'rgba(108,182,255,0.5)';
    ctx.setLineDash([4, 4]);
    ctx.strokeRect((rect[2] - view.panX) * s, (rect[0] - view.panY) * s, (rect[3] - rect[2]) * s, (rect[1] - rect[0]) * s);
    ctx.setLineDash([]);
    if (view.source === 'mosaic') {
      // Frame 0's window, the image the average shows.
      const win = ValidRect(image, 'window');
      ctx.strokeStyle = 'rgba(242,165,65,0.7)';
      ctx.strokeRect((win[2] - view.panX) * s, (win[0] - view.panY) * s, (win[3] - win[2]) * s, (win[1] - win[0]) * s);
    }
    const n = image.header.n_frames;
    const extent = image.header.extent;
    $('image-info').textContent = `${image.rows}×${image.cols} px` +
      (view.source === 'mosaic' && Array.isArray(extent)
        ? ` at bin ${image.bin} (frame-0 rows ${extent[0]}…${extent[1]}, cols ${extent[2]}…${extent[3]}; ` +
          'dashed: best covered, orange: frame 0)' : '') +
      (n !== undefined ? `, ${n} frames` : '') +
      (image.header.frame !== undefined ? `, frame ${image.header.frame}` : '') +
      `, contrast ${lo.toPrecision(4)} … ${hi.toPrecision(4)}, zoom ${view.zoom.toFixed(2)}×`;
  }

  function SetupImageInteraction() {
    const canvas = $('image-canvas');
    const scaleNow = () => {
      const image = CurrentImage();
      if (!image) return 1;
      return Math.min(canvas.clientWidth / image.cols, canvas.clientHeight / image.rows) * view.zoom;
    };
    canvas.addEventListener('wheel', (event) => {
      event.preventDefault();
      if (!CurrentImage()) return;
      const s = scaleNow();
      const box = canvas.getBoundingClientRect();
      const mx = event.clientX - box.left, my = event.clientY - box.top;
      const imgX = view.panX + mx / s, imgY = view.panY + my / s;  // kept under the cursor
      view.zoom = Math.min(64, Math.max(0.25, view.zoom * Math.exp(-event.deltaY * 0.0015)));
      const s2 = scaleNow();
      view.panX = imgX - mx / s2; view.panY = imgY - my / s2;
      view.fitted = false;
      dirty.image = true; ScheduleRender();
    }, { passive: false });
    let drag = null;
    canvas.addEventListener('pointerdown', (event) => {
      drag = { x: event.clientX, y: event.clientY, panX: view.panX, panY: view.panY };
      canvas.setPointerCapture(event.pointerId);
      canvas.classList.add('dragging');
    });
    canvas.addEventListener('pointermove', (event) => {
      if (!drag) return;
      const s = scaleNow();
      view.panX = drag.panX - (event.clientX - drag.x) / s;
      view.panY = drag.panY - (event.clientY - drag.y) / s;
      view.fitted = false;
      dirty.image = true; ScheduleRender();
    });
    const end = () => { drag = null; canvas.classList.remove('dragging'); };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
    canvas.addEventListener('dblclick', () => { view.fitted = true; dirty.image = true; ScheduleRender(); });
  }

  // ---- spectrum -------------------------------------------------------------

  // In-place iterative radix-2 FFT of (re, im), length a power of two.
  function Fft(re, im) {
    const n = re.length;
    for (let i = 1, j = 0; i < n; i++) {
      let bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) {
        let t = re[i]; re[i] = re[j]; re[j] = t;
        t = im[i]; im[i] = im[j]; im[j] = t;
      }
    }
    for (let len = 2; len <= n; len <<= 1) {
      const angle = -2 * Math.PI / len;
      const wr = Math.cos(angle), wi = Math.sin(angle);
      for (let i = 0; i < n; i += len) {
        let cr = 1, ci = 0;
        for (let k = 0; k < len / 2; k++) {
          const a = i + k, b = a + len / 2;
          const tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr;
          re[b] = re[a] - tr; im[b] = im[a] - ti;
          re[a] += tr; im[a] += ti;
          const ncr = cr * wr - ci * wi;
          ci = cr * wi + ci * wr; cr = ncr;
        }
      }
    }
  }

  let spectrumKey = null;
  // log10 power of the average's valid region, zero frequency at the centre:
  // a centre crop of m×m px (m up to 512), Hann-windowed and bilinearly
  // upsampled to n×n (n the next power of two) for the radix-2 FFT. One
  // spectrum pixel is then m/n image px, so f cycles/px sits at radius f·m
  // spectrum pixels (`scale` = m/n). Upsampling only: no frequency is aliased.
  function ComputeSpectrum() {
    const image = state.average;
    if (!image || (state.spectrum && state.spectrum.source === 'daemon')) return;
    const key = `${image.header.n_frames}|${image.pixels.length}`;
    if (key === spectrumKey) return;
    spectrumKey = key;
    const [r0, r1, c0, c1] = ValidRect(image);
    const m = Math.min(r1 - r0, c1 - c0, 512);
    if (m < 16) { state.spectrum = null; return; }
    let n = 16;
    while (n < m) n *= 2;
    const top = r0 + ((r1 - r0 - m) >> 1), left = c0 + ((c1 - c0 - m) >> 1);
    const at = (r, c) => {
      const v = image.pixels[(top + r) * image.cols + left + c];
      return Number.isFinite(v) ? v : 0;
    };
    // Bilinear sample of the crop at n×n points covering it.
    const re = new Float64Array(n * n), im = new Float64Array(n * n);
    const step = m / n;
    let mean = 0;
    for (let r = 0; r < n; r++) {
      const y = Math.min(m - 1, Math.max(0, (r + 0.5) * step - 0.5));
      const ry = Math.floor(y), fy = y - ry, ry1 = Math.min(m - 1, ry + 1);
      for (let c = 0; c < n; c++) {
        const x = Math.min(m - 1, Math.max(0, (c + 0.5) * step - 0.5));
        const cx = Math.floor(x), fx = x - cx, cx1 = Math.min(m - 1, cx + 1);
        const v = (1 - fy) * ((1 - fx) * at(ry, cx) + fx * at(ry, cx1)) + fy * ((1 - fx) * at(ry1, cx) + fx * at(ry1, cx1));
        re[r * n + c] = v;
        mean += v;
      }
    }
    mean /= n * n;
    const hann = new Float64Array(n);
    for (let i = 0; i < n; i++) hann[i] = 0.5 - 0.5 * Math.cos(2 * Math.PI * i / n);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) re[r * n + c] = (re[r * n + c] - mean) * hann[r] * hann[c];
    }
    const rowRe = new Float64Array(n), rowIm = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) { rowRe[c] = re[r * n + c]; rowIm[c] = im[r * n + c]; }
      Fft(rowRe, rowIm);
      for (let c = 0; c < n; c++) { re[r * n + c] = rowRe[c]; im[r * n + c] = rowIm[c]; }
    }
    for (let c = 0; c < n; c++) {
      for (let r = 0; r < n; r++) { rowRe[r] = re[r * n + c]; rowIm[r] = im[r * n + c]; }
      Fft(rowRe, rowIm);
      for (let r = 0; r < n; r++) { re[r * n + c] = rowRe[r]; im[r * n + c] = rowIm[r]; }
    }
    const values = new Float32Array(n * n);
    const half = n >> 1;
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        const p = re[r * n + c] ** 2 + im[r * n + c] ** 2;
        values[((r + half) % n) * n + ((c + half) % n)] = Math.log10(p + 1e-12);
      }
    }
    values[half * n + half] = values[half * n + half + 1];  // hide the (removed) DC term
    state.spectrum = { n, crop: m, scale: m / n, values, source: 'browser' };
  }

  const spectrumBitmap = document.createElement('canvas');
  let spectrumBitmapOf = null;

  function RenderSpectrum() {
    const canvas = $('spectrum-canvas');
    const { ctx, w, h } = Fit(canvas);
    const sp = state.spectrum;
    if (!sp) { $('spectrum-info').textContent = 'waiting for the average…'; return; }
    if (spectrumBitmapOf !== sp) {
      spectrumBitmapOf = sp;
      const [lo, hi] = Percentiles(sp.values, sp.n, [0, sp.n, 0, sp.n], [0.02, 0.9995]);
      spectrumBitmap.width = spectrumBitmap.height = sp.n;
      const bctx = spectrumBitmap.getContext('2d');
      const out = bctx.createImageData(sp.n, sp.n);
      const scale = hi > lo ? 1 / (hi - lo) : 0;
      for (let i = 0; i < sp.n * sp.n; i++) {
        const t = Math.min(1, Math.max(0, (sp.values[i] - lo) * scale));
        // "inferno"-like dark-to-bright ramp, readable on the dark theme.
        out.data[4 * i] = 255 * Math.min(1, 1.6 * t);
        out.data[4 * i + 1] = 255 * Math.max(0, Math.min(1, 1.6 * t - 0.55));
        out.data[4 * i + 2] = 255 * Math.max(0, Math.min(1, t < 0.35 ? 1.4 * t : 1.4 * (t - 0.7) + 0.2));
        out.data[4 * i + 3] = 255;
      }
      bctx.putImageData(out, 0, 0);
    }
    const size = Math.min(w, h);
    const x0 = (w - size) / 2, y0 = (h - size) / 2;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(spectrumBitmap, x0, y0, size, size);
    // The spectrum's n px are drawn over `size` canvas px; f cycles/px is at
    // f·n·scale spectrum px from the centre.
    // Zero frequency is the centre of spectrum pixel (n/2, n/2).
    const centre = (Math.floor(sp.n / 2) + 0.5) * size / sp.n;
    const cx = x0 + centre, cy = y0 + centre, perCycle = size * sp.scale;
    const q = state.quality || {};
    const info = [];
    const ring = (freq, colour, label) => {
      if (!(freq > 0 && freq <= 0.75)) return;
      ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.arc(cx, cy, freq * perCycle, 0, 2 * Math.PI); ctx.stroke();
      ctx.setLineDash([]);
      info.push(`${label} ${freq.toFixed(3)} c/px` + (state.pixelSizeA ? ` (${(state.pixelSizeA / freq).toFixed(2)} Å)` : ''));
    };
    ring(Num(q.info_transfer_cycles_per_px), '#7ee787', 'information limit');
    ring(Num(q.frc_resolution_cycles_per_px), '#d2a8ff', 'FRC');
    if (Array.isArray(q.lattice_reciprocal)) {
      ctx.strokeStyle = '#e3d04b'; ctx.lineWidth = 1.5;
      for (const g of q.lattice_reciprocal) {
        if (!Array.isArray(g) || g.length < 2) continue;
        for (const sign of [1, -1]) {  // Friedel pair
          ctx.beginPath();
          ctx.arc(cx + sign * g[0] * perCycle, cy + sign * g[1] * perCycle, 7, 0, 2 * Math.PI);
          ctx.stroke();
        }
      }
      info.push(`${q.lattice_reciprocal.length} lattice vectors`);
    }
    $('spectrum-info').textContent = (sp.source === 'daemon' ? `${sp.n}² from the daemon`
      : `${sp.crop}² px centre crop of the average` + (sp.crop !== sp.n ? `, resampled to ${sp.n}²` : '')) +
      (info.length ? ' · ' + info.join(' · ') : '');
  }

  // ---- drift ----------------------------------------------------------------

  function NiceTicks(lo, hi, count, minStep = 0) {
    const span = hi - lo || 1;
    const raw = Math.max(span / count, minStep);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
    return { ticks, step };
  }

  function RenderDrift() {
    const canvas = $('drift-canvas');
    const { ctx, w, h } = Fit(canvas);
    const d = state.drift;
    const xs = d && Array.isArray(d.shift_x_px) ? d.shift_x_px : [];
    const ys = d && Array.isArray(d.shift_y_px) ? d.shift_y_px : [];
    const n = Math.min(xs.length, ys.length);
    if (n === 0) { $('drift-info').textContent = 'waiting for drift…'; return; }
    const flagged = Array.isArray(d.flagged) ? d.flagged : [];
    const stamps = Array.isArray(d.timestamp_s) ? d.timestamp_s : [];
    const haveTime = stamps.length >= n && stamps.slice(0, n).every((t) => Num(t) !== null);
    const t0 = haveTime ? stamps[0] : 0;
    // Without timestamps: the wire frame index (it has gaps where frames were lost).
    const indices = Array.isArray(d.frame_indices) && d.frame_indices.length >= n ? d.frame_indices : null;
    const tOf = (i) => (haveTime ? stamps[i] - t0 : indices ? indices[i] : i);
    const unitScale = view.unit === 'A' && state.pixelSizeA ? state.pixelSizeA : 1;
    const unit = unitScale === 1 ? 'px' : 'Å';
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) {
      for (const v of [xs[i], ys[i]]) if (Num(v) !== null) { lo = Math.min(lo, v * unitScale); hi = Math.max(hi, v * unitScale); }
    }
    if (!Number.isFinite(lo)) { lo = -1; hi = 1; }
    const pad = Math.max(0.5 * unitScale, (hi - lo) * 0.08);
    lo -= pad; hi += pad;
    const tMax = Math.max(tOf(n - 1), haveTime ? 1e-3 : 1);  // starts at 0 (frame 0 or its time)
    const L = 56, R = 12, T = 10, B = 30;
    const px = (t) => L + (t / tMax) * (w - L - R);
    const py = (v) => T + (1 - (v - lo) / (hi - lo)) * (h - T - B);

    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#8793a1'; ctx.strokeStyle = '#2a313a'; ctx.lineWidth = 1;
    const yt = NiceTicks(lo, hi, 6);
    ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
    for (const t of yt.ticks) {
      ctx.beginPath(); ctx.moveTo(L, py(t)); ctx.lineTo(w - R, py(t)); ctx.stroke();
      ctx.fillText(Number(t.toPrecision(6)).toString(), L - 6, py(t));
    }
    const xt = NiceTicks(0, tMax, 10, haveTime ? 0 : 1);  // whole frames
    ctx.textAlign = 'center'; ctx.textBaseline = 'top';
    for (const t of xt.ticks) {
      ctx.beginPath(); ctx.moveTo(px(t), T); ctx.lineTo(px(t), h - B); ctx.stroke();
      ctx.fillText(Number(t.toPrecision(6)).toString(), px(t), h - B + 4);
    }
    ctx.fillText(haveTime ? 'time (s)' : 'frame', (L + w - R) / 2, h - 13);
    ctx.save(); ctx.translate(12, (T + h - B) / 2); ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle'; ctx.fillText(`shift (${unit})`, 0, 0); ctx.restore();

    // Flagged frames: red bars behind the traces.
    ctx.fillStyle = 'rgba(248,81,73,0.55)';
    let nFlagged = 0;
    for (let i = 0; i < n; i++) {
      if (flagged[i]) { nFlagged++; ctx.fillRect(px(tOf(i)) - 1.5, T, 3, h - T - B); }
    }
    const trace = (values, colour) => {
      ctx.strokeStyle = colour; ctx.lineWidth = 1.8; ctx.beginPath();
      let started = false;
      for (let i = 0; i < n; i++) {
        if (Num(values[i]) === null) { started = false; continue; }
        const X = px(tOf(i)), Y = py(values[i] * unitScale);
        if (started) ctx.lineTo(X, Y); else { ctx.moveTo(X, Y); started = true; }
      }
      ctx.stroke();
      if (n <= 400) {
        ctx.fillStyle = colour;
        for (let i = 0; i < n; i++) if (Num(values[i]) !== null) ctx.fillRect(px(tOf(i)) - 1.5, py(values[i] * unitScale) - 1.5, 3, 3);
      }
    };
    trace(xs, '#f2a541');
    trace(ys, '#4fc3f7');

    const last = n - 1;
    const rate = Array.isArray(d.drift_rate_A_per_s) ? d.drift_rate_A_per_s : null;
    $('drift-info').textContent =
      `frame ${d.frame ?? last}: x ${Fmt(xs[last] * unitScale)} ${unit}, y ${Fmt(ys[last] * unitScale)} ${unit}` +
      (rate ? ` · drift rate x ${Fmt(rate[0], 2)}, y ${Fmt(rate[1], 2)} Å/s` : '') +
      ` · ${nFlagged} flagged` + (haveTime ? '' : ' · no timestamps: plotted against frame index');
  }

  // ---- matrices -------------------------------------------------------------

  // Diverging blue-white-red for a value in [-1, 1].
  function Diverging(t) {
    const a = Math.min(1, Math.abs(t));
    return t < 0 ? [255 * (1 - a * 0.85), 255 * (1 - a * 0.6), 255] : [255, 255 * (1 - a * 0.6), 255 * (1 - a * 0.85)];
  }

  function RenderMatrix(canvas, values, status, k) {
    const { ctx, w, h } = Fit(canvas);
    let maxAbs = 0;
    for (let i = 0; i < k * k; i++) if (Number.isFinite(values[i])) maxAbs = Math.max(maxAbs, Math.abs(values[i]));
    const bitmap = document.createElement('canvas');
    bitmap.width = bitmap.height = k;
    const bctx = bitmap.getContext('2d');
    const out = bctx.createImageData(k, k);
    const bigCells = Math.min(w, h) / k >= 6;
    for (let i = 0; i < k * k; i++) {
      let rgb;
      const v = values[i], s = status[i];
      if (s === 4) rgb = [30, 34, 40];                       // not correlated: no overlap
      else if (s === 0 || !Number.isFinite(v)) rgb = [58, 64, 73];
      else if (!bigCells && s === 2) rgb = [248, 81, 73];    // too small to mark: paint
      else if (!bigCells && s === 3) rgb = [227, 208, 75];
      else rgb = Diverging(maxAbs > 0 ? v / maxAbs : 0);
      out.data[4 * i] = rgb[0]; out.data[4 * i + 1] = rgb[1]; out.data[4 * i + 2] = rgb[2]; out.data[4 * i + 3] = 255;
    }
    bctx.putImageData(out, 0, 0);
    const size = Math.min(w, h), x0 = (w - size) / 2, y0 = (h - size) / 2, cell = size / k;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, x0, y0, size, size);
    if (bigCells) {
      ctx.lineWidth = Math.max(1, cell / 8);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const s = status[i * k + j];
          const X = x0 + j * cell, Y = y0 + i * cell;
          if (s === 2) {  // rejected: a red cross
            ctx.strokeStyle = '#f85149'; ctx.beginPath();
            ctx.moveTo(X + cell * 0.2, Y + cell * 0.2); ctx.lineTo(X + cell * 0.8, Y + cell * 0.8);
            ctx.moveTo(X + cell * 0.8, Y + cell * 0.2); ctx.lineTo(X + cell * 0.2, Y + cell * 0.8); ctx.stroke();
          } else if (s === 3) {  // snapped: a yellow dot
            ctx.fillStyle = '#e3d04b'; ctx.beginPath();
            ctx.arc(X + cell / 2, Y + cell / 2, cell * 0.22, 0, 2 * Math.PI); ctx.fill();
          }
        }
      }
    }
    return maxAbs;
  }

  function RenderMatrices() {
    const started = performance.now();
    const m = state.matricesWindow || state.matrices;
    if (!m) {
      Fit($('matrix-x')); Fit($('matrix-y'));
      $('matrix-info').textContent = 'waiting for the matrices…';
      return;
    }
    const mx = RenderMatrix($('matrix-x'), m.x, m.status, m.n);
    const my = RenderMatrix($('matrix-y'), m.y, m.status, m.n);
    const counts = [0, 0, 0, 0];
    for (const s of m.status) if (s < 4) counts[s]++;
    const cells = m.block > 1 ? 'blocks' : 'pairs';
    const where = state.matricesWindow
      ? `frames ${m.i0}–${m.i0 + m.n - 1} × ${m.j0}–${m.j0 + m.n - 1} of k = ${m.k} at full resolution (click: back to the overview)`
      : state.matricesWindowWanted ? `k = ${m.k} · asking for the window…`
      : m.block > 1 ? `k = ${m.k}, ${m.block}×${m.block} frames per cell (click: the full-resolution window there)`
      : `k = ${m.k}`;
    $('matrix-info').textContent = `${where} (row i, column j: j_from_i) · colour ±${mx.toFixed(2)} / ±${my.toFixed(2)} px · ` +
      `${counts[1]} inlier, ${counts[2]} rejected, ${counts[3]} snapped, ${counts[0]} missing ${cells}`;
    state.matricesRenderMs = performance.now() - started;
    state.maxMatricesRenderMs = Math.max(state.maxMatricesRenderMs, state.matricesRenderMs);
    state.matricesRenders.push({ k: m.k, n: m.n, block: m.block, ms: state.matricesRenderMs });
    if (state.matricesRenders.length > 100) state.matricesRenders.shift();
  }

  // ---- quality and events ---------------------------------------------------

  function RenderQuality() {
    const q = state.quality || {};
    const A = state.pixelSizeA;
    $('q-frames').textContent = q.n_frames !== undefined ? String(q.n_frames) : '—';
    $('q-rms').textContent = Num(q.consistency_rms_px) !== null
      ? `${q.consistency_rms_px.toFixed(3)} px` + (A ? ` (${(q.consistency_rms_px * A).toFixed(3)} Å)` : '') : '—';
    $('q-rejected').textContent = Num(q.rejected_pair_fraction) !== null ? `${(100 * q.rejected_pair_fraction).toFixed(1)} %` : '—';
    const flagged = Array.isArray(q.flagged_frames) ? q.flagged_frames.length : q.flagged_frames;
    $('q-flagged').textContent = flagged !== undefined && flagged !== null ? String(flagged) : '—';
    const res = (key) => {
      const f = Num(q[key]);
      if (f === null || f <= 0) return '—';
      return A ? `${(A / f).toFixed(2)} Å (${f.toFixed(3)} c/px)` : `${f.toFixed(3)} c/px (${(1 / f).toFixed(2)} px)`;
    };
    $('q-resolution').textContent = res('frc_resolution_cycles_per_px');
    $('q-info').textContent = res('info_transfer_cycles_per_px');
    const snr = Num(q.snr) ?? Num(q.snr_estimate);
    $('q-snr').textContent = snr !== null ? snr.toFixed(2) : Num(q.snr_db) !== null ? `${q.snr_db.toFixed(1)} dB` : '—';
    const good = $('q-good');
    good.textContent = typeof q.good === 'boolean' ? (q.good ? 'yes' : 'no') : '—';
    good.className = typeof q.good === 'boolean' ? (q.good ? 'good-yes' : 'good-no') : '';
    $('q-reason').textContent = q.reason ? String(q.reason) : '—';
    RenderHeader();
  }

  let renderedEvents = 0;
  function RenderEvents() {
    const list = $('events');
    if (renderedEvents > state.events.length) { list.textContent = ''; renderedEvents = 0; }
    // Newest first; only what arrived since the last render is added.
    for (let i = renderedEvents; i < state.events.length; i++) {
      const e = state.events[i];
      const li = document.createElement('li');
      li.className = ['info', 'warning', 'error'].includes(e.level) ? e.level : 'info';
      const code = document.createElement('span');
      code.className = 'code';
      code.textContent = e.code;
      const text = document.createElement('span');
      text.textContent = e.message + (e.frame !== undefined && e.frame !== null ? ` (frame ${e.frame})` : '');
      li.title = `${e.at.toLocaleTimeString()} · series ${e.series ?? '—'} · ${e.level}`;
      li.append(code, text);
      list.prepend(li);
    }
    while (list.children.length > kMaxEvents) list.lastChild.remove();
    renderedEvents = state.events.length;
  }

  // ---------------------------------------------------------------------------
  // Controls.

  function Toggle(onId, offIds) {
    $(onId).classList.add('on');
    for (const id of offIds) $(id).classList.remove('on');
  }

  function SetUnit(unit) {
    view.unit = unit;
    Toggle(unit === 'A' ? 'unit-A' : 'unit-px', [unit === 'A' ? 'unit-px' : 'unit-A']);
    dirty.drift = true; ScheduleRender();
  }

  function SetupControls() {
    const sources = Object.keys(kSourceTitles);
    for (const source of sources) {
      $(`show-${source}`).onclick = () => {
        view.source = source;
        Toggle(`show-${source}`, sources.filter((other) => other !== source).map((other) => `show-${other}`));
        view.fitted = true;  // the mosaic and the window differ in size
        dirty.image = true; ScheduleRender();
      };
    }
    const setContrast = (mode) => {
      view.contrast = mode;
      Toggle(mode === 'auto' ? 'contrast-auto' : 'contrast-manual', [mode === 'auto' ? 'contrast-manual' : 'contrast-auto']);
      $('contrast-min').disabled = $('contrast-max').disabled = mode === 'auto';
      dirty.image = true; ScheduleRender();
    };
    $('contrast-auto').onclick = () => setContrast('auto');
    $('contrast-manual').onclick = () => setContrast('manual');
    const onLimits = () => {
      const lo = parseFloat($('contrast-min').value), hi = parseFloat($('contrast-max').value);
      if (Number.isFinite(lo)) view.manualMin = lo;
      if (Number.isFinite(hi)) view.manualMax = hi;
      dirty.image = true; ScheduleRender();
    };
    $('contrast-min').oninput = onLimits;
    $('contrast-max').oninput = onLimits;
    $('view-reset').onclick = () => { view.fitted = true; dirty.image = true; ScheduleRender(); };
    $('matrix-x').addEventListener('click', OnMatrixClick);
    $('matrix-y').addEventListener('click', OnMatrixClick);
    $('unit-px').onclick = () => SetUnit('px');
    $('unit-A').onclick = () => { if (state.pixelSizeA) SetUnit('A'); };
    SetupImageInteraction();
    // Canvases follow their boxes.
    new ResizeObserver(() => {
      Object.keys(dirty).forEach((k) => { dirty[k] = true; });
      ScheduleRender();
    }).observe(document.querySelector('main'));
  }

  SetupControls();
  ScheduleRender();
  Connect();
})();
