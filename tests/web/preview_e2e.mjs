// End-to-end test of the live web preview in headless Chromium (playwright-core).
//
//   node tests/web/preview_e2e.mjs --feed harness --harness build/tests/web_feed_harness \
//        --web-dir stream/web --out build/web_preview_e2e
//   node tests/web/preview_e2e.mjs --feed daemon --livealign build/livealign ...
//
// --feed harness: tests/web/web_feed_harness publishes a synthetic series through
// HttpServer and writes what it published last to truth.json.
// --feed daemon: `livealign simulate` -> `livealign serve --http` (the real pipeline);
// the numbers are compared with the daemon's outputs (see RunDaemonFeed).
//
// Exit codes: 0 pass, 1 fail, 77 skipped (no /usr/bin/chromium or node_modules).
// Screenshots go to --out: preview_mid.png, preview_late_page.png, preview_end.png,
// preview_reconnected.png, preview_matrices_window.png (and preview_failure.png
// when something fails).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';

const kChromium = '/usr/bin/chromium';
const kSkip = 77;

function ParseArgs(argv) {
  const args = { feed: 'harness', frames: 40, size: 256, rate: 6 };
  for (let i = 2; i + 1 < argv.length; i += 2) {
    args[argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[i + 1];
  }
  args.frames = Number(args.frames);
  return args;
}

const args = ParseArgs(process.argv);
const webDir = path.resolve(args.webDir || path.join(path.dirname(new URL(import.meta.url).pathname), '../../stream/web'));
const outDir = path.resolve(args.out || 'web_preview_e2e');

if (!existsSync(kChromium)) {
  console.log(`SKIP: ${kChromium} is missing (tools/setup installs chromium)`);
  process.exit(kSkip);
}
if (!existsSync(path.join(webDir, 'node_modules', 'playwright-core'))) {
  console.log(`SKIP: ${webDir}/node_modules is missing (run tools/setup, which runs npm ci there)`);
  process.exit(kSkip);
}
const { chromium } = createRequire(path.join(webDir, 'package.json'))('playwright-core');
mkdirSync(outDir, { recursive: true });

const children = [];
let browser = null;
const failures = [];

function Check(condition, what) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${what}`);
  if (!condition) failures.push(what);
}

// Starts a program; resolves with {child, lines} once `ready` matches a line of
// its stdout (the match is returned).
function Start(program, programArgs, ready, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, programArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const prefix = path.basename(program);
    child.stderr.on('data', (d) => process.stderr.write(`[${prefix}] ${d}`));
    const timer = setTimeout(() => reject(new Error(`${prefix} did not print ${ready} in ${timeoutMs} ms`)), timeoutMs);
    let done = false;
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      console.log(`[${prefix}] ${line}`);
      const m = line.match(ready);
      if (m && !done) { done = true; clearTimeout(timer); resolve({ child, match: m }); }
    });
    child.on('exit', (code) => {
      if (!done) { clearTimeout(timer); reject(new Error(`${prefix} exited with ${code} before ready`)); }
    });
  });
}

function Stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

// Pixels of a canvas that are drawn (alpha > 0), and how many distinct colours.
async function CanvasStats(page, id) {
  return page.evaluate((canvasId) => {
    const c = document.getElementById(canvasId);
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let drawn = 0;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0) {
        drawn++;
        if (colours.size < 5000) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
      }
    }
    return { width: c.width, height: c.height, drawnFraction: drawn / (data.length / 4), colours: colours.size };
  }, id);
}

// Count of pixels near an RGB colour (the drift traces).
async function ColourPixels(page, id, rgb) {
  return page.evaluate(([canvasId, [r, g, b]]) => {
    const c = document.getElementById(canvasId);
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 200 && Math.abs(data[i] - r) < 30 && Math.abs(data[i + 1] - g) < 30 && Math.abs(data[i + 2] - b) < 30) n++;
    }
    return n;
  }, [id, rgb]);
}

const Text = (page, selector) => page.locator(selector).textContent();

// The grey values (red channel) of the central part of the image canvas,
// inside the image and its valid rectangle, for comparing what is shown.
const ImageGrey = (page) => page.evaluate(() => {
  const c = document.getElementById('image-canvas');
  const w = Math.floor(c.width * 0.2), h = Math.floor(c.height * 0.3);
  const data = c.getContext('2d').getImageData(Math.floor((c.width - w) / 2), Math.floor((c.height - h) / 2), w, h).data;
  const grey = [];
  for (let i = 0; i < data.length; i += 4) grey.push(data[i]);
  return grey;
});

function Correlation(a, b) {
  const n = Math.min(a.length, b.length);
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (let i = 0; i < n; i++) { sa += a[i]; sb += b[i]; saa += a[i] * a[i]; sbb += b[i] * b[i]; sab += a[i] * b[i]; }
  const cov = sab / n - (sa / n) * (sb / n);
  return cov / Math.sqrt((saa / n - (sa / n) ** 2) * (sbb / n - (sb / n) ** 2));
}
const FrameCount = (page) => page.evaluate(() => Number(document.getElementById('frame-count').dataset.nFrames));

async function OpenPage(url, errors) {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // A refused WebSocket while the feed restarts is expected, not a page error.
    if (m.type() === 'error' && !/WebSocket/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  await page.goto(url);
  return page;
}

async function CheckDrawn(page, label) {
  const image = await CanvasStats(page, 'image-canvas');
  Check(image.drawnFraction > 0.3 && image.colours > 50,
    `${label}: image canvas shows an image (${(100 * image.drawnFraction).toFixed(0)} % drawn, ${image.colours} colours)`);
  const spectrum = await CanvasStats(page, 'spectrum-canvas');
  Check(spectrum.drawnFraction > 0.5 && spectrum.colours > 50,
    `${label}: spectrum canvas drawn (${(100 * spectrum.drawnFraction).toFixed(0)} %, ${spectrum.colours} colours)`);
  const x = await ColourPixels(page, 'drift-canvas', [242, 165, 65]);
  const y = await ColourPixels(page, 'drift-canvas', [79, 195, 247]);
  Check(x > 100 && y > 100, `${label}: drift plot has both traces (${x} x-pixels, ${y} y-pixels)`);
  for (const id of ['matrix-x', 'matrix-y']) {
    const m = await CanvasStats(page, id);
    Check(m.drawnFraction > 0.3 && m.colours > 10, `${label}: ${id} heat map drawn (${m.colours} colours)`);
  }
}

async function LaunchBrowser() {
  browser = await chromium.launch({
    executablePath: kChromium,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A TCP port that was free a moment ago (the OS picks it).
function FreePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function WaitForHttp(url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch (error) { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`${url} did not answer in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The real pipeline: livealign simulate -> livealign serve --http -> page, with
// tests/web/web_daemon_probe subscribed to the daemon's PUB socket as an
// independent ZeroMQ client: it records the last drift and quality it received
// and the daemon's `status` reply, and the page must show the same.
async function MainDaemon() {
  const n = args.frames;
  const [source, publish, control, http] = [await FreePort(), await FreePort(), await FreePort(), await FreePort()];
  const ep = (port) => `tcp://127.0.0.1:${port}`;
  const url = `http://127.0.0.1:${http}/`;
  Start(args.livealign, ['serve', '--source', ep(source), '--publish', ep(publish), '--control', ep(control),
    '--http', `127.0.0.1:${http}`, '--out', path.join(outDir, 'daemon_out')], /$^/).catch(() => {});
  await WaitForHttp(url, 30000);
  const publishedPath = path.join(outDir, 'published.json');
  const { child: probe } = await Start(args.probe, ['--publish', ep(publish), '--control', ep(control),
    '--json', publishedPath], /^subscribed$/);
  const probeDone = new Promise((resolve) => probe.on('exit', (code) => resolve(code)));

  await LaunchBrowser();
  const errors = [];
  const page = await OpenPage(url, errors);
  await page.waitForFunction(() => window.livealign.state.connected, null, { timeout: 10000 });
  Check(true, 'the page served by livealign serve --http connects to its WebSocket');
  Start(args.livealign, ['simulate', '--publish', ep(source), '--frames', String(n), '--size', String(args.size),
    '--rate', String(args.rate), '--series', 'e2e'], /^sent /, 120000).catch((e) => failures.push(String(e)));

  const mid = Math.floor(n / 2);
  await page.waitForFunction((m) => Number(document.getElementById('frame-count').dataset.nFrames) >= m, mid,
    { timeout: 90000 });
  const midCount = await FrameCount(page);
  const late = await OpenPage(url, errors);
  await page.screenshot({ path: path.join(outDir, 'preview_mid.png') });
  await late.waitForFunction(() => window.livealign.state.drift && window.livealign.state.quality, null, { timeout: 10000 });
  const lateFirst = await late.evaluate(() => window.livealign.state.firstDriftFrames);
  Check(lateFirst >= midCount, `a page opened at frame ${midCount} starts from the snapshot at frame ${lateFirst}, not 0`);
  await late.close();

  const probeCode = await probeDone;  // exits after series_end and the status request
  Check(probeCode === 0, `the ZeroMQ probe saw the series end and got the status (exit ${probeCode})`);
  const published = JSON.parse(readFileSync(publishedPath, 'utf8'));
  await page.waitForFunction((total) => Number(document.getElementById('frame-count').dataset.nFrames) === total &&
    window.livealign.state.seriesEnd !== null, n, { timeout: 30000 });
  // The page's last drift is the probe's last drift (the same final message).
  await page.waitForFunction((want) => {
    const d = window.livealign.state.drift;
    return d && d.final === want.final && d.n_frames === want.n_frames;
  }, published.drift, { timeout: 10000 });
  await page.waitForFunction(() => window.livealign.state.lastRenderAt >= window.livealign.state.lastDriftAt);
  await page.screenshot({ path: path.join(outDir, 'preview_end.png') });

  // After series_end the daemon is idle (status.n_frames is the running
  // series', 0); frames_accepted counts what it registered.
  const status = published.status;
  Check(status.frames_accepted === n && status.series_completed >= 1 &&
        (await Text(page, '#frame-count')) === String(status.frames_accepted),
    `#frame-count ${await Text(page, '#frame-count')} = status.frames_accepted ${status.frames_accepted} = ${n} frames sent`);
  const d = published.drift;
  const shown = await page.evaluate(() => window.livealign.state.drift);
  const last = d.shift_x_px.length - 1;
  Check(shown.shift_x_px.length === d.shift_x_px.length &&
        shown.shift_x_px.every((v, i) => v === d.shift_x_px[i]) && shown.shift_y_px.every((v, i) => v === d.shift_y_px[i]),
    'the page decoded the same drift arrays as the ZeroMQ subscriber');
  const driftInfo = await Text(page, '#drift-info');
  Check(driftInfo.includes(`x ${d.shift_x_px[last].toFixed(3)} px`) && driftInfo.includes(`y ${d.shift_y_px[last].toFixed(3)} px`),
    `drift panel shows the last shift: "${driftInfo}"`);
  const q = published.quality;
  Check((await Text(page, '#q-frames')) === String(q.n_frames), `quality: frames ${q.n_frames}`);
  Check((await Text(page, '#q-rms')).startsWith(`${q.consistency_rms_px.toFixed(3)} px`),
    `quality: consistency RMS ${q.consistency_rms_px.toFixed(3)} px`);
  Check((await Text(page, '#q-rejected')) === `${(100 * q.rejected_pair_fraction).toFixed(1)} %`,
    `quality: rejected pairs ${(100 * q.rejected_pair_fraction).toFixed(1)} %`);
  const good = typeof q.good === 'boolean' ? q.good : q.valid;
  Check((await Text(page, '#q-good')) === (good ? 'yes' : 'no'), `quality: good/valid = ${good}`);
  const reason = q.reason ?? q.verdict;
  if (reason !== undefined) Check((await Text(page, '#q-reason')) === String(reason), `quality: reason "${reason}"`);

  const image = await CanvasStats(page, 'image-canvas');
  Check(image.drawnFraction > 0.3 && image.colours > 50, `image canvas shows the average (${image.colours} colours)`);
  // The last mosaic the daemon published is the one the page holds and draws.
  const pm = published.mosaic;
  const mosaicShown = await page.evaluate(() => {
    const image = window.livealign.state.mosaic;
    return image && { n_frames: image.header.n_frames, extent: image.header.extent, bin: image.bin,
      shape: [image.rows, image.cols], count_sum: image.counts.reduce((a, b) => a + b, 0) };
  });
  Check(pm && mosaicShown && mosaicShown.n_frames === pm.n_frames && mosaicShown.bin === pm.bin &&
        JSON.stringify(mosaicShown.extent) === JSON.stringify(pm.extent) &&
        JSON.stringify(mosaicShown.shape) === JSON.stringify(pm.shape) && mosaicShown.count_sum === pm.count_sum,
    `the page holds the daemon's last mosaic: ${JSON.stringify(mosaicShown)}`);
  await page.click('#show-mosaic');
  await page.waitForFunction(() => document.getElementById('image-title').textContent === 'Mosaic');
  const mosaicImage = await CanvasStats(page, 'image-canvas');
  Check(mosaicImage.drawnFraction > 0.3 && mosaicImage.colours > 50, `the mosaic is drawn (${mosaicImage.colours} colours)`);
  await page.screenshot({ path: path.join(outDir, 'preview_mosaic.png') });
  await page.click('#show-average');
  const spectrum = await CanvasStats(page, 'spectrum-canvas');
  Check(spectrum.drawnFraction > 0.5 && spectrum.colours > 50, 'spectrum canvas drawn');
  const x = await ColourPixels(page, 'drift-canvas', [242, 165, 65]);
  const y = await ColourPixels(page, 'drift-canvas', [79, 195, 247]);
  Check(x > 100 && y > 100, `drift plot has both traces (${x} x-pixels, ${y} y-pixels)`);
  const counts = await page.evaluate(() => window.livealign.state.counts);
  if (counts.matrices) {
    const m = await CanvasStats(page, 'matrix-x');
    Check(m.drawnFraction > 0.3 && m.colours > 10, 'shift matrix heat map drawn');
  } else {
    console.log('note: the daemon published no `matrices` topic; the heat maps stay empty');
  }
  if (!counts.frame) console.log('note: the daemon published no `frame` topic; the raw-frame toggle has nothing to show');
  const waits = await page.evaluate(() => window.livealign.state.driftToRenderMs.slice().sort((a, b) => a - b));
  console.log(`info: drift message -> page redrawn: median ${waits[Math.floor(waits.length / 2)].toFixed(1)} ms, ` +
    `max ${waits[waits.length - 1].toFixed(1)} ms over ${waits.length} redraws; messages per topic ${JSON.stringify(counts)}`);
  Check(errors.length === 0, `no page errors${errors.length ? ': ' + errors.join('; ') : ''}`);
}

async function Main() {
  if (args.feed === 'daemon') return MainDaemon();
  if (args.feed !== 'harness') throw new Error(`unknown --feed ${args.feed}`);
  const n = args.frames;
  const truthPath = path.join(outDir, 'truth.json');
  // The feed waits for the first page, so page A sees the series from frame 0;
  // page B opens mid-series and must catch up from the snapshot.
  const { child: feed, match } = await Start(args.harness,
    ['--http', '127.0.0.1:0', '--frames', String(n), '--size', String(args.size), '--rate', String(args.rate),
      '--truth', truthPath, '--start-after-clients', '1', '--series', 'sim-0001', '--channels', 'HAADF,ABF'],
    /^listening (\d+)$/);
  const port = Number(match[1]);
  const url = `http://127.0.0.1:${port}/`;

  await LaunchBrowser();
  const errors = [];
  const page = await OpenPage(url, errors);
  Check((await page.title()).includes('livealign'), 'the page is served at /');
  Check(await page.evaluate(() => typeof MessagePack === 'object' && typeof window.livealign === 'object'),
    'the embedded msgpack library and window.livealign are loaded');

  // Mid-series.
  const mid = Math.floor(n / 2);
  await page.waitForFunction((m) => Number(document.getElementById('frame-count').dataset.nFrames) >= m, mid,
    { timeout: 60000 });
  const midCount = await FrameCount(page);
  Check(midCount >= mid && midCount < n, `mid-series: frame counter at ${midCount} of ${n}`);
  // A page opened mid-series gets the snapshot at once (opened before the
  // screenshot, which takes a while on a busy machine).
  const late = await OpenPage(url, errors);
  await page.screenshot({ path: path.join(outDir, 'preview_mid.png') });
  await late.waitForFunction(() => window.livealign.state.drift && window.livealign.state.average &&
    window.livealign.state.quality && window.livealign.state.matrices, null, { timeout: 10000 });
  const lateFirst = await late.evaluate(() => window.livealign.state.firstDriftFrames);
  Check(lateFirst >= midCount, `a page opened at frame ${midCount} starts from the snapshot at frame ${lateFirst}, not 0` +
    (lateFirst === n ? ' (the series had ended by then: busy machine)' : ''));
  const lateChannels = await late.evaluate(() => Object.keys(window.livealign.state.averages).sort().join(','));
  Check(lateChannels === 'ABF,HAADF', `the snapshot holds the latest average of every channel (${lateChannels})`);
  await late.screenshot({ path: path.join(outDir, 'preview_late_page.png') });
  await late.close();

  // End of series.
  await page.waitForFunction((total) => Number(document.getElementById('frame-count').dataset.nFrames) === total &&
    window.livealign.state.seriesEnd !== null, n, { timeout: 60000 });
  await page.waitForFunction(() => window.livealign.state.lastRenderAt >= window.livealign.state.lastDriftAt);
  Check((await Text(page, '#frame-count')) === String(n), `#frame-count shows ${n}`);
  await page.screenshot({ path: path.join(outDir, 'preview_end.png') });
  await CheckDrawn(page, 'end');

  // Several detectors: the switch lists the channels and shows the chosen
  // channel's average (ABF is the lattice in inverted contrast).
  Check((await page.isVisible('#channel-switch')) &&
        (await page.locator('#channel-switch button').allTextContents()).join(',') === 'HAADF,ABF',
    'the channel switch lists HAADF and ABF');
  Check((await Text(page, '#image-title')) === 'Average — HAADF', 'the first channel is shown first');
  const haadfGrey = await ImageGrey(page);
  await page.click('#channel-switch button[data-channel="ABF"]');
  await page.waitForFunction(() => document.getElementById('image-title').textContent === 'Average — ABF');
  const abfGrey = await ImageGrey(page);
  const switched = Correlation(haadfGrey, abfGrey);
  Check(switched < -0.5 && (await page.evaluate(() => window.livealign.state.average.header.channel)) === 'ABF',
    `switching to ABF shows its average: the image changes to inverted contrast (r = ${switched.toFixed(2)})`);
  await page.click('#channel-switch button[data-channel="HAADF"]');
  await page.waitForFunction(() => document.getElementById('image-title').textContent === 'Average — HAADF');
  const back = Correlation(haadfGrey, await ImageGrey(page));
  Check(back > 0.99, `switching back to HAADF shows the same image again (r = ${back.toFixed(3)})`);

  const truth = JSON.parse(readFileSync(truthPath, 'utf8'));
  const shown = await page.evaluate(() => {
    const d = window.livealign.state.drift;
    return { lastX: d.shift_x_px[d.shift_x_px.length - 1], lastY: d.shift_y_px[d.shift_y_px.length - 1] };
  });
  Check(Math.abs(shown.lastX - truth.last_shift_x_px) < 1e-9 && Math.abs(shown.lastY - truth.last_shift_y_px) < 1e-9,
    `decoded last shift (${shown.lastX.toFixed(4)}, ${shown.lastY.toFixed(4)}) px equals the published one`);
  const driftInfo = await Text(page, '#drift-info');
  Check(driftInfo.includes(`x ${truth.last_shift_x_px.toFixed(3)} px`) && driftInfo.includes(`y ${truth.last_shift_y_px.toFixed(3)} px`),
    `drift panel shows the last shift: "${driftInfo}"`);
  Check((await Text(page, '#q-frames')) === String(truth.n_frames), `quality: frames ${truth.n_frames}`);
  Check((await Text(page, '#q-rms')).startsWith(`${truth.consistency_rms_px.toFixed(3)} px`),
    `quality: consistency RMS ${truth.consistency_rms_px.toFixed(3)} px`);
  Check((await Text(page, '#q-rejected')) === `${(100 * truth.rejected_pair_fraction).toFixed(1)} %`,
    `quality: rejected pairs ${(100 * truth.rejected_pair_fraction).toFixed(1)} %`);
  Check((await Text(page, '#q-flagged')) === String(truth.flagged_frames), `quality: ${truth.flagged_frames} flagged frame(s)`);
  Check((await Text(page, '#q-good')) === (truth.good ? 'yes' : 'no'), `quality: good = ${truth.good}`);
  Check((await Text(page, '#q-reason')) === truth.reason, `quality: reason "${truth.reason}"`);
  const rate = await Text(page, '#drift-rate');
  Check(rate.includes(truth.drift_rate_A_per_s[0].toFixed(2)) && rate.includes('Å/s'), `drift rate shown: ${rate}`);
  const events = await page.locator('#events li').allTextContents();
  Check(events.some((e) => e.includes('frame_flagged')) && events.some((e) => e.includes('series_end')),
    `events list has frame_flagged and series_end (${events.length} events)`);
  Check((await page.locator('#events li.warning').count()) >= 1, 'warning events are level-coloured');
  Check((await Text(page, '#spectrum-info')).includes('information limit') &&
        (await Text(page, '#spectrum-info')).includes('lattice'), 'spectrum marks the rings and the lattice');

  // Controls: drift in Å, the raw frame, manual contrast, zoom.
  await page.click('#unit-A');
  // "Å/s" of the drift rate is there already: wait for the shift itself in Å.
  await page.waitForFunction(() => /x -?\d+\.\d+ Å/.test(document.getElementById('drift-info').textContent));
  Check((await Text(page, '#drift-info')).includes(`x ${(truth.last_shift_x_px * truth.pixel_size_A).toFixed(3)} Å`),
    `drift in Å uses pixel_size_A: "${await Text(page, '#drift-info')}"`);
  await page.click('#unit-px');
  await page.click('#show-frame');
  await page.waitForFunction(() => document.getElementById('image-title').textContent === 'Latest frame');
  const frameImage = await CanvasStats(page, 'image-canvas');
  Check(frameImage.drawnFraction > 0.3 && frameImage.colours > 50, 'the latest raw frame (uint16) is drawn');
  // The mosaic: the whole extent the drift covered, binned by the daemon's codec.
  await page.click('#show-mosaic');
  await page.waitForFunction(() => document.getElementById('image-title').textContent === 'Mosaic — HAADF');
  const m = truth.mosaic;
  const mosaicShown = await page.evaluate(() => {
    const image = window.livealign.state.mosaics.HAADF;
    return image && { rows: image.rows, cols: image.cols, bin: image.bin, n: image.header.n_frames,
      countSum: image.counts.reduce((a, b) => a + b, 0), uncovered: image.counts.filter((v) => v === 0).length };
  });
  Check(mosaicShown && mosaicShown.rows === m.rows && mosaicShown.cols === m.cols && mosaicShown.bin === m.bin &&
        mosaicShown.n === m.n_frames && mosaicShown.countSum === m.count_sum && mosaicShown.uncovered > 0,
    `the page decoded the last mosaic as published: ${JSON.stringify(mosaicShown)} against ${JSON.stringify(m)}`);
  const mosaicInfo = await Text(page, '#image-info');
  const [e0, e1, e2, e3] = m.extent;
  Check(mosaicInfo.startsWith(`${m.rows}×${m.cols} px at bin ${m.bin} (frame-0 rows ${e0}…${e1}, cols ${e2}…${e3};`),
    `the mosaic's size, bin and frame-0 extent are shown: "${mosaicInfo}"`);
  const mosaicImage = await CanvasStats(page, 'image-canvas');
  Check(mosaicImage.drawnFraction > 0.3 && mosaicImage.colours > 50, 'the mosaic is drawn');
  await page.screenshot({ path: path.join(outDir, 'preview_mosaic.png') });
  await page.click('#show-average');
  const before = await Text(page, '#image-info');
  const box = await page.locator('#image-canvas').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -600);
  await page.waitForFunction((b) => document.getElementById('image-info').textContent !== b, before);
  Check(/zoom [2-9]\.\d\d×|zoom \d\d+\.\d\d×/.test(await Text(page, '#image-info')), `wheel zooms: ${await Text(page, '#image-info')}`);
  await page.click('#contrast-manual');
  await page.fill('#contrast-min', '0');
  await page.fill('#contrast-max', '1000');
  await page.waitForFunction(() => document.getElementById('image-info').textContent.includes('0.000 … 1000'));
  Check(true, 'manual contrast applies');
  await page.click('#contrast-auto');
  await page.click('#view-reset');

  // Reported, not asserted (no timing assertions in tests): the page should
  // update within 1 s of each drift message.
  const waits = await page.evaluate(() => window.livealign.state.driftToRenderMs.slice().sort((a, b) => a - b));
  const q = (f) => waits[Math.min(waits.length - 1, Math.floor(f * waits.length))].toFixed(1);
  console.log(`info: drift message -> page redrawn: median ${q(0.5)} ms, 95 % ${q(0.95)} ms, ` +
    `max ${q(1)} ms over ${waits.length} redraws (screenshots and the second page run meanwhile)`);

  // The feed restarts on the same port with a new series: the page reconnects.
  await Stop(feed);
  await page.waitForFunction(() => !window.livealign.state.connected, null, { timeout: 10000 });
  const { child: feed2 } = await Start(args.harness,
    ['--http', `127.0.0.1:${port}`, '--frames', '5', '--size', String(args.size), '--rate', '20',
      '--series', 'sim-0002', '--timestamps', '0'], /^listening (\d+)$/);
  await page.waitForFunction(() => String(window.livealign.state.series) === 'sim-0002' &&
    Number(document.getElementById('frame-count').dataset.nFrames) === 5, null, { timeout: 20000 });
  Check((await Text(page, '#series')) === 'sim-0002', 'after the feed restarts the page reconnects and follows the new series');
  Check(!(await page.isVisible('#channel-switch')) && (await Text(page, '#image-title')) === 'Average',
    'a series with one unnamed channel has no channel switch');
  Check((await Text(page, '#drift-info')).includes('plotted against frame index') &&
        (await Text(page, '#drift-rate')) === '—', 'without timestamps the drift is plotted against frame index, no rate');
  await page.screenshot({ path: path.join(outDir, 'preview_reconnected.png') });
  await Stop(feed2);

  // A long session: matrices of k = 5000 frames. The daemon sends a bounded
  // overview (<= 256 x 256 cells), so the page's redraw of the matrices stays
  // quick; a click asks for the full-resolution window there.
  const kLong = 5000;
  const { child: feed3 } = await Start(args.harness,
    ['--http', `127.0.0.1:${port}`, '--frames', '8', '--size', String(args.size), '--rate', '8',
      '--series', 'sim-0003', '--matrices-k', String(kLong)], /^listening (\d+)$/);
  await page.waitForFunction((k) => String(window.livealign.state.series) === 'sim-0003' &&
    window.livealign.state.seriesEnd !== null &&
    window.livealign.state.matricesRenders.filter((r) => r.k === k).length >= 3, kLong, { timeout: 30000 });
  const long = await page.evaluate((k) => {
    const m = window.livealign.state.matrices;
    const renders = window.livealign.state.matricesRenders.filter((r) => r.k === k).map((r) => r.ms);
    return { k: m.k, n: m.n, block: m.block, renders };
  }, kLong);
  Check(long.k === kLong && long.n <= 256 && long.block === Math.ceil(kLong / 256),
    `k = ${kLong}: the page gets the overview (${long.n} x ${long.n} cells of ${long.block} x ${long.block} frames)`);
  const longMax = Math.max(...long.renders);
  const longMedian = long.renders.sort((a, b) => a - b)[Math.floor(long.renders.length / 2)];
  // A generous bound on the median: the page must stay responsive on a
  // loaded machine (the dense 5000^2 matrices took seconds per redraw); one
  // redraw preempted by other processes (264 ms once, with benchmarks
  // running beside the suite) says nothing about the page.
  Check(longMedian < 250, `k = ${kLong}: matrices redrawn in a median ${longMedian.toFixed(1)} ms (< 250 ms) over ` +
    `${long.renders.length} updates, max ${longMax.toFixed(1)} ms`);
  for (const id of ['matrix-x', 'matrix-y']) {
    const m = await CanvasStats(page, id);
    Check(m.drawnFraction > 0.3 && m.colours > 10, `k = ${kLong}: ${id} overview drawn (${m.colours} colours)`);
  }
  // Click at 40 % across, 30 % down the X panel: frames j ~ 2000, i ~ 1500.
  const matrixBox = await page.locator('#matrix-x').boundingBox();
  const side = Math.min(matrixBox.width, matrixBox.height);
  await page.mouse.click(matrixBox.x + (matrixBox.width - side) / 2 + 0.4 * side,
    matrixBox.y + (matrixBox.height - side) / 2 + 0.3 * side);
  await page.waitForFunction(() => window.livealign.state.matricesWindow !== null, null, { timeout: 10000 });
  const win = await page.evaluate(() => {
    const w = window.livealign.state.matricesWindow;
    return { i0: w.i0, j0: w.j0, n: w.n, block: w.block, k: w.k, requests: window.livealign.state.matricesWindowRequests,
      ms: window.livealign.state.matricesRenders[window.livealign.state.matricesRenders.length - 1] };
  });
  const near = (first, at) => first <= at * kLong && at * kLong < first + win.n + long.block;
  Check(win.block === 1 && win.k === kLong && win.n === 64 && near(win.i0, 0.3) && near(win.j0, 0.4),
    `a click asks for and draws the full-resolution window around it: rows ${win.i0}+${win.n}, columns ${win.j0}+${win.n} ` +
    `(${win.requests} request(s), drawn in ${win.ms.ms.toFixed(1)} ms)`);
  Check((await Text(page, '#matrix-info')).includes('at full resolution'), `the window is labelled: "${await Text(page, '#matrix-info')}"`);
  const windowStats = await CanvasStats(page, 'matrix-x');
  Check(windowStats.drawnFraction > 0.3 && windowStats.colours > 10, `the window is drawn (${windowStats.colours} colours)`);
  await page.screenshot({ path: path.join(outDir, 'preview_matrices_window.png') });
  await page.mouse.click(matrixBox.x + matrixBox.width / 2, matrixBox.y + matrixBox.height / 2);
  await page.waitForFunction(() => window.livealign.state.matricesWindow === null &&
    !document.getElementById('matrix-info').textContent.includes('at full resolution'), null, { timeout: 10000 });
  Check(true, 'a second click goes back to the overview');
  await Stop(feed3);

  Check(errors.length === 0, `no page errors${errors.length ? ': ' + errors.join('; ') : ''}`);
}

let code = 0;
try {
  await Main();
  code = failures.length ? 1 : 0;
} catch (error) {
  console.log(`FAIL ${error.stack || error}`);
  code = 1;
}
if (code !== 0 && browser) {
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: path.join(outDir, 'preview_failure.png') }).catch(() => {});
    }
  }
}
if (browser) await browser.close();
await Promise.all(children.map(Stop));
console.log(code === 0 ? `PASS (screenshots in ${outDir})` : `FAILED: ${failures.length} check(s)`);
process.exit(code);
