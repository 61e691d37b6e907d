// Live checks while the person gets ready and records: the light from the preview's luminance, the
// face from a vendored detector (vendor/face-api, loaded here, after the camera is live), and in
// number mode the microphone's level. While recording it looks faster and reads the eyes and the
// mouth with the landmark model (loaded after the detector), so that performance.js can say what
// the person did before anything is sent. capture.js imports this module once the preview plays;
// if it, or the detector, cannot load or run, the page works as it would without them.

import { judge, measure } from './performance.js';
import { english, t } from './texts.js';

const FRAME_MS = 250;       // a look at the preview four times a second
const RECORDING_FRAME_MS = 100;  // while recording: as often as the phone allows, at most 10 a second
const BASELINE_LOOKS = 12;  // the last looks with the face in place before recording: the person's own eyes and mouth
const SHOW_AFTER = 2;       // a problem is named once it is seen in 2 looks in a row (0.5 s)
const GOOD_MS = 800;        // the face has been fine this long ("about a second"): recording may start
const STUCK_MS = 4000;      // checks failing this long: the person may start anyway
const DETECTOR_WAIT_MS = 3000;  // light alone decides while the detector is still loading after this
const FRAME_WIDTH = 180;    // the down-scaled frame the checks read (its height follows the preview)
// No face in the frame: every WIDE_EVERY looks (the first miss included), look again at a frame
// WIDE_SCALE times larger through a larger network input, which finds a face far from the camera
// (a tenth of the picture's width) that the quick look misses; what it finds holds till the next.
const WIDE_EVERY = 3;
const WIDE_SCALE = 2;
const WIDE_INPUT = 416;
const MEASURED_FRAMES = 40; // per-frame timings kept in the Performance timeline
const COLLAPSED = 30;       // the whole picture's mean luma below this: covered, or turned away
const UNPAINTED = Symbol('unpainted');  // check()'s answer for a look at a frame not painted yet
const UNPAINTED_MS = 30;    // and the next look after one, soon: the looks keep their pace

// The oval of capture.html's guide (viewBox 300x400: centre 150,190, radii 105,140), as fractions.
const OVAL = { x: 0.5, y: 0.475, rx: 0.35, ry: 0.35 };

// Thresholds on 0-255 luma (BT.601), and on the face box against the oval.
const DARK = 70;            // mean luma of the face (or the oval) below this: too dark
const BRIGHT = 215;         // above this: too bright
const CLIPPED = 0.3;        // or this share of the face's pixels blown out (≥ 250)
const BACKLIGHT = 75;       // the background this much brighter than the face: backlit
const FAR = 0.45;           // the face's size over the oval's below this: too far
const CLOSE = 1.25;         // above this: too close
const SECOND_FACE = 0.7;    // another face counts from this detector score (the first from 0.5)
const OFF_CENTRE = 0.16;    // the face's centre this far from the oval's (share of the preview)

// Microphone levels (RMS or peak of samples in -1..1).
const MUTE_PEAK = 0.0001;   // below -80 dBFS for 2 s before recording: the microphone gives nothing
const QUIET_RMS = 0.0056;   // the loudest 50 ms so far below -45 dBFS after 2.5 s of reading: warn

/** The words of `key` in two parts: the short ones up to the colon, and the rest (or ''). */
function parts(key) {
  const words = t(`coach_${key}`);
  const colon = words.search(/：|: /);
  if (colon < 0) return [words, ''];
  const rest = words.slice(colon).replace(/^(：|: )/, '');
  return [words.slice(0, colon), english ? rest.charAt(0).toUpperCase() + rest.slice(1) : rest];
}

/** Lay the words capture.js put on the oval out around the face: the short words above it, the
 * rest below it (app.css places them), so that on a small preview they never cover the face. */
function layOut(hint, key) {
  if (!hint?.textContent) return;
  const [head, rest] = parts(key);
  const part = (text, name) => Object.assign(document.createElement('span'), { className: name, textContent: text });
  hint.replaceChildren(part(head, 'head'), ...(rest ? [part(rest, 'rest')] : []));
}

// -- the face detector: loaded once per page, on first use ---------------------------------------

const VENDOR = new URL('./vendor/face-api/', import.meta.url).href;
let detector = null;

/** The face detector, loading it the first time: resolves with {detect(canvas), backend}, or
 * rejects when it cannot run here (the checks then go on with the light alone). */
export function loadDetector() {
  detector ??= (async () => {
    performance.mark('liveness:detector-start');
    const faceapi = await import(`${VENDOR}face-api.esm.js`);
    faceapi.tf.setWasmPaths?.(VENDOR);
    // WebAssembly (SIMD) is the quickest for so small a network on phones and in headless
    // Chromium; WebGL, then plain JavaScript, where it cannot start.
    let backend = null;
    for (const name of ['wasm', 'webgl', 'cpu']) {
      try {
        if (await faceapi.tf.setBackend(name)) { backend = name; break; }
      } catch { /* the next one */ }
    }
    if (!backend) throw new Error('no TensorFlow.js backend');
    await faceapi.tf.ready();
    await faceapi.nets.tinyFaceDetector.loadFromUri(VENDOR);
    const options = new faceapi.TinyFaceDetectorOptions({ inputSize: 224, scoreThreshold: 0.5 });
    const wideOptions = new faceapi.TinyFaceDetectorOptions({ inputSize: WIDE_INPUT, scoreThreshold: 0.5 });
    const detect = (canvas) => faceapi.detectAllFaces(canvas, options);
    const detectWide = (canvas) => faceapi.detectAllFaces(canvas, wideOptions);
    await detect(document.createElement('canvas'));  // the first run compiles; do it now
    performance.measure('liveness:detector-load', 'liveness:detector-start');
    // The landmark model comes after: the coaching needs only the detector, the recording both.
    const withPoints = loadLandmarks(faceapi, options);
    return { detect, detectWide, backend, withPoints };
  })();
  return detector;
}

/** Resolves with detect(canvas) → faces with their 68 landmark points, or null when the landmark
 * model cannot load or run (the checks that need it are then "not measured"). */
async function loadLandmarks(faceapi, options) {
  try {
    performance.mark('liveness:landmarks-start');
    const net = faceapi.nets.faceLandmark68TinyNet;
    await net.loadFromUri(VENDOR);
    const warm = Object.assign(document.createElement('canvas'), { width: 112, height: 112 });
    await net.detectLandmarks(warm);  // the first run compiles; do it now
    performance.measure('liveness:landmarks-load', 'liveness:landmarks-start');
    return (canvas) => faceapi.detectAllFaces(canvas, options).withFaceLandmarks(true);
  } catch {
    return null;
  }
}

// -- the checks ----------------------------------------------------------------------------------

/**
 * Watch the preview (and the microphone in number mode) and report what to fix.
 * `onChange({ key, words, ok, startable })` is called whenever any of them changes: `ok` once the
 * checks have passed for GOOD_MS, `startable` once recording may start (ok, or STUCK_MS of failed
 * checks, or no check can run). Returns { stop(), recording(on), performed(…), heardPeak() }.
 */
export function startCoach({ video, stage, level, stream, onChange }) {
  const coach = newCoach({ video, stage, level, stream, onChange });
  useDetector(coach);
  look(coach);
  // A look that never ends (a detector hung in the engine) must not hold the button back: once
  // STUCK_MS have passed the person may start anyway, whatever the looks are doing.
  coach.stuck = setTimeout(() => report(coach, coach.seen.key ?? 'checking'), STUCK_MS + FRAME_MS);
  return {
    stop: () => stopCoach(coach),
    /** Recording started (on) or ended: the microphone's silence means something else then. */
    recording: (on) => recording(coach, on),
    /** What the person did during the recording just made (performance.js's verdict); call it
     * before recording(false). `actions`: the challenge's action codes in order. */
    performed: ({ mode, actions, durationMs }) => judge({
      mode, actions, samples: coach.samples, before: coach.before,
      voiced: coach.sound ? coach.sound.voiced() : null, durationMs,
    }),
    /** The loudest sample heard since recording(true); null without a microphone meter. */
    heardPeak: () => (coach.sound ? coach.sound.peak() : null),
  };
}

/** Everything one coach knows that changes, in one object (the looks, the reports, the
 * recording), beside what it was given. */
function newCoach({ video, stage, level, stream, onChange }) {
  const canvas = document.createElement('canvas');
  return {
    video, stage, onChange,
    hint: stage.querySelector('.hint'),
    canvas,                                  // the down-scaled frame each look reads
    context: canvas.getContext('2d', { willReadFrequently: true }),
    wide: document.createElement('canvas'),  // the larger frame of the second look
    sound: stream.getAudioTracks().length ? listen(stream, level) : null,
    started: performance.now(),
    face: null,            // the detector, once loaded (null: light only)
    points: null,          // the detector with the landmark model, once loaded
    faceFailed: false,     // the detector cannot load or run here
    timer: 0,              // the next look
    stuck: 0,              // the report after STUCK_MS whatever the looks do
    stopped: false,
    seen: { key: null, count: 0 },                           // the last look's problem, and in how many looks in a row
    shown: { key: 'checking', ok: false, startable: false },  // what onChange last said
    goodSince: 0,          // when the looks began to find nothing wrong (0: they do not)
    everStartable: false,  // recording may start (it stays so)
    frames: 0,             // looks timed in the Performance timeline
    recordingSince: 0,     // when recording started (0: not recording)
    misses: 0,             // looks in a row the quick look found no face
    farFaces: [],          // what the last wide look found (in the small frame's pixels)
    before: [],            // { ear, mouth } of the last looks before recording with the face in place
    samples: [],           // what each look saw while recording (performance.js)
  };
}

/** Use the face detector once it has loaded (and its landmark model, after it); without it the
 * light alone decides. */
function useDetector(coach) {
  loadDetector().then((loaded) => {
    coach.face = loaded;
    loaded.withPoints.then((found) => { coach.points = found; });
  }, () => { coach.faceFailed = true; });
}

/** One look at the preview, reported; the next one after it, faster while recording. */
async function look(coach) {
  if (coach.stopped) return;
  const begun = performance.now();
  let key;
  try {
    key = await check(coach);
  } catch {
    key = null;  // a frame that could not be read: say nothing new
  }
  if (coach.stopped) return;
  // A preview that cannot be read still lets the person start in time; a look at a frame the
  // engine had not painted yet counts for nothing (the stuck timer still lets the person start).
  if (key !== UNPAINTED) report(coach, key ?? 'checking');
  const spent = performance.now() - begun;
  const wait = key === UNPAINTED ? UNPAINTED_MS
    : coach.recordingSince ? Math.max(0, RECORDING_FRAME_MS - spent) : FRAME_MS;
  coach.timer = setTimeout(() => look(coach), wait);
}

/** What is wrong in the preview now ('good' when nothing), null when it cannot tell yet, or
 * UNPAINTED when the engine handed over a frame it had not painted. */
async function check(coach) {
  const { canvas, context } = coach;
  if (!grab(coach)) return null;
  const image = context.getImageData(0, 0, canvas.width, canvas.height);
  if (!painted(image)) return UNPAINTED;
  let faces = coach.face ? onePerPerson(await timed(coach, () => detectFaces(coach))) : null;
  if (faces && !faces.length) faces = await lookWide(coach);
  else coach.misses = 0;
  const box = faces?.length === 1 ? faces[0].box : null;
  const light = lightProblem(image, box);
  const voice = coach.sound?.problem(coach.recordingSince);
  const placement = box ? placementProblem(box, canvas) : null;
  remember(coach, faces, placement, light, image);
  if (light === 'dark' || light === 'bright') return light;
  if (!coach.face && !coach.faceFailed && performance.now() - coach.started < DETECTOR_WAIT_MS) return 'checking';
  if (faces && !faces.length) return 'noFace';
  if (faces && faces.length > 1) return 'faces';
  return placement ?? light ?? voice ?? 'good';
}

/** The faces in the frame as { score, box, points (68, or none) }. */
async function detectFaces(coach) {
  if (!coach.points) return coach.face.detect(coach.canvas);
  const found = await coach.points(coach.canvas);
  return found.map(({ detection, landmarks }) => ({
    score: detection.score, box: detection.box, points: landmarks.positions,
  }));
}

/** Keep what this look saw for performance.js: while recording, every look; before it, the
 * eyes and the mouth of the looks with the face in place (the person's own baseline). */
function remember(coach, faces, placement, light, image) {
  const lead = faces?.length === 1 ? faces[0] : null;
  const shape = lead?.points ? measure(lead.points) : null;
  if (!coach.recordingSince) {
    if (shape?.mouth != null && !placement && !light) coach.before = [...coach.before, shape].slice(-BASELINE_LOOKS);
    return;
  }
  let where = null;
  if (faces) where = !faces.length ? 'none' : faces.length > 1 ? 'many' : placement ?? 'ok';
  coach.samples.push({
    t: Math.round(performance.now() - coach.recordingSince), face: where, dark: meanLuma(image) < COLLAPSED,
    ear: shape?.ear ?? null, mouth: shape?.mouth ?? null,
  });
}

/** The faces a wide look finds (one every WIDE_EVERY misses; the last one's between). */
async function lookWide(coach) {
  if (coach.misses++ % WIDE_EVERY) return coach.farFaces;
  if (!coach.face.detectWide || !grab(coach, coach.wide, FRAME_WIDTH * WIDE_SCALE)) return [];
  const scale = coach.canvas.width / coach.wide.width;
  coach.farFaces = onePerPerson(await coach.face.detectWide(coach.wide)).map(({ score, box }) => ({
    score,
    box: { x: box.x * scale, y: box.y * scale, width: box.width * scale, height: box.height * scale },
  }));
  return coach.farFaces;
}

/** The faces found, best first; a weak second one (a pattern on the wall) is not a person. */
function onePerPerson(found) {
  const sorted = [...found].sort((a, b) => b.score - a.score);
  return sorted.filter((f, i) => i === 0 || f.score >= SECOND_FACE);
}

/** Draw what the preview shows (object-fit: cover crops the camera's picture), `width` wide. */
function grab({ video, stage, canvas }, into = canvas, width = FRAME_WIDTH) {
  const { videoWidth: vw, videoHeight: vh } = video;
  const { width: sw, height: sh } = stage.getBoundingClientRect();
  if (!vw || !vh || !sw || !sh || video.readyState < 2) return false;
  const scale = Math.max(sw / vw, sh / vh);
  const cw = sw / scale;
  const ch = sh / scale;
  into.width = width;
  into.height = Math.round(width * sh / sw);
  into.getContext('2d').drawImage(video, (vw - cw) / 2, (vh - ch) / 2, cw, ch, 0, 0, into.width, into.height);
  return true;
}

/** Run the detector, timing the first MEASURED_FRAMES runs in the Performance timeline. */
async function timed(coach, run) {
  const start = performance.now();
  const result = await run();
  if (coach.frames++ < MEASURED_FRAMES) performance.measure('liveness:face-detect', { start, end: performance.now() });
  return result;
}

/** Too far, too close or off centre, for a face box in the frame's pixels; null when fine. */
function placementProblem(box, { width: w, height: h }) {
  const size = Math.sqrt(box.width * box.height) / Math.sqrt(2 * OVAL.rx * w * 2 * OVAL.ry * h);
  if (size < FAR) return 'far';
  if (size > CLOSE) return 'close';
  const dx = (box.x + box.width / 2) / w - OVAL.x;
  const dy = (box.y + box.height / 2) / h - OVAL.y;
  return Math.hypot(dx, dy) > OFF_CENTRE ? 'offCentre' : null;
}

/** Count what a look found, and tell onChange when what to show has changed: a problem once it
 * is seen SHOW_AFTER looks in a row, `ok` after GOOD_MS of good looks, `startable` for good. */
function report(coach, key) {
  const { seen, shown, stage } = coach;
  coach.seen = key === seen.key ? { key, count: seen.count + 1 } : { key, count: 1 };
  const now = performance.now();
  const good = key === 'good';
  if (!good) coach.goodSince = 0;
  else if (!coach.goodSince) coach.goodSince = now;
  const ok = good && now - coach.goodSince >= GOOD_MS;
  coach.everStartable ||= ok || now - coach.started >= STUCK_MS;
  const named = good || key === 'checking' || coach.seen.count >= SHOW_AFTER ? key : shown.key;
  const next = { key: named, ok, startable: ok || coach.everStartable };
  stage.dataset.check = named === 'good' ? 'good' : named === 'checking' ? '' : 'bad';
  if (next.key === shown.key && next.ok === shown.ok && next.startable === shown.startable) return;
  coach.shown = next;
  coach.onChange({ ...next, words: t(`coach_${next.key}`) });
  layOut(coach.hint, next.key);
}

function recording(coach, on) {
  coach.recordingSince = on ? performance.now() : 0;
  if (on) coach.samples = [];
  coach.sound?.reset(coach.recordingSince);
}

function stopCoach(coach) {
  coach.stopped = true;
  clearTimeout(coach.timer);
  clearTimeout(coach.stuck);
  coach.sound?.stop();
  delete coach.stage.dataset.check;
}

/** 'dark', 'bright' or 'backlit' from the frame's luma (the face box, else the oval), or null. */
function lightProblem({ data, width, height }, box) {
  let inside = 0; let insideCount = 0; let clipped = 0; let outside = 0; let outsideCount = 0;
  for (let y = 0; y < height; y += 2) {
    for (let x = 0; x < width; x += 2) {
      const i = (y * width + x) * 4;
      const luma = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
      const inFace = box
        ? x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height
        : ((x / width - OVAL.x) / OVAL.rx) ** 2 + ((y / height - OVAL.y) / OVAL.ry) ** 2 < 0.6;
      const inOval = ((x / width - OVAL.x) / OVAL.rx) ** 2 + ((y / height - OVAL.y) / OVAL.ry) ** 2 < 1;
      if (inFace) {
        inside += luma; insideCount += 1; clipped += luma >= 250;
      } else if (!inOval) {
        outside += luma; outsideCount += 1;
      }
    }
  }
  if (!insideCount) return null;
  const face = inside / insideCount;
  if (face < DARK) return 'dark';
  if (face > BRIGHT || clipped / insideCount > CLIPPED) return 'bright';
  if (outsideCount && outside / outsideCount - face > BACKLIGHT) return 'backlit';
  return null;
}

/** Whether the engine drew anything: a camera's picture is opaque, even a covered one, where a
 * frame the engine had not painted yet leaves the canvas transparent (WebKitGTK on a loaded
 * machine hands over such frames, which read as black). Every fourth pixel each way. */
function painted({ data, width, height }) {
  for (let y = 0; y < height; y += 4) {
    for (let x = 0; x < width; x += 4) {
      if (data[(y * width + x) * 4 + 3]) return true;
    }
  }
  return false;
}

/** The whole frame's mean luma (every fourth pixel each way). */
function meanLuma({ data, width, height }) {
  let sum = 0; let count = 0;
  for (let y = 0; y < height; y += 4) {
    for (let x = 0; x < width; x += 4) {
      const i = (y * width + x) * 4;
      sum += 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
      count += 1;
    }
  }
  return count ? sum / count : 255;
}

/** A level meter on the microphone; `problem()` names a silent microphone or an unheard voice. */
function listen(stream, level) {
  const Context = window.AudioContext || window.webkitAudioContext;
  let audio;
  try {
    audio = new Context();
  } catch {
    return null;
  }
  audio.resume?.().catch(() => {});
  const analyser = audio.createAnalyser();
  analyser.fftSize = 2048;  // ~43 ms at 48 kHz
  audio.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const bar = level.firstElementChild;
  const started = performance.now();
  let peak = 0;          // since reset()
  let loudest = 0;       // the loudest RMS since reset()
  let everHeard = 0;     // the loudest sample since the meter started
  let recordingAt = 0;   // when recording started (0: not recording)
  let voiced = [];       // { t: ms from then, ms: how long it stands for } of each tick the voice was above the floor
  let lastTick = 0;
  level.hidden = false;
  const meter = setInterval(() => {
    const now = performance.now();
    const tick = Math.min(now - (lastTick || now - 50), 150);  // a slow phone's ticks come late: each stands for its own gap
    lastTick = now;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0; let max = 0;
    for (const s of samples) { sum += s * s; max = Math.max(max, Math.abs(s)); }
    const rms = Math.sqrt(sum / samples.length);
    peak = Math.max(peak, max);
    loudest = Math.max(loudest, rms);
    everHeard = Math.max(everHeard, max);
    if (recordingAt && rms >= QUIET_RMS) voiced.push({ t: Math.round(now - recordingAt), ms: tick });
    // -60..0 dBFS across the bar
    bar.style.transform = `scaleX(${Math.min(1, Math.max(0, 1 + (20 * Math.log10(rms + 1e-9)) / 60))})`;
  }, 50);
  let since = performance.now();
  return {
    problem(recordingSince) {
      const now = performance.now();
      if (audio.state !== 'running') return null;  // not allowed to listen yet: no verdict
      if (!recordingSince) return now - started > 2000 && everHeard < MUTE_PEAK ? 'mute' : null;
      return now - recordingSince > 2500 && loudest < QUIET_RMS ? 'quiet' : null;
    },
    /** From now (recording from `at`, 0: not recording): the loudest and the voice anew. */
    reset(at = 0) {
      peak = 0; loudest = 0; since = performance.now();
      if (at) { recordingAt = at; voiced = []; } else recordingAt = 0;
    },
    /** When (and how long) the voice was heard while recording; null while the meter may not listen. */
    voiced: () => (audio.state === 'running' ? voiced : null),
    peak: () => (audio.state === 'running' && performance.now() - since > 1000 ? peak : null),
    stop() {
      clearInterval(meter);
      level.hidden = true;
      audio.close().catch(() => {});
    },
  };
}

// -- after the camera: which camera, and the recording's own check ---------------------------

/** The cameras a person may choose between to face: every one not named as a back camera
 * (labels are known once the camera is allowed). */
export async function frontCameras() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.filter((d) => d.kind === 'videoinput' && !/\b(back|rear)\b|environment|后置/i.test(d.label));
  } catch {
    return [];
  }
}

/** An infrared camera (Windows Hello and some phones list one): it sees no colour. */
export function isInfrared(label) {
  return /\b(ir|infrared)\b|红外/i.test(label ?? '');
}

/**
 * What is wrong with a finished recording, before it is sent: 'short' (stopped early), 'small'
 * (too few bytes to hold a picture) or 'silent' (number mode: the microphone's loudest sample
 * stayed below the server's own silence line, `peak` from the level meter; null: not measured).
 * null when it looks fine.
 */
export function recordingFault(blob, { ms, wantedMs, peak }) {
  if (ms < wantedMs * 0.8) return 'short';
  if (blob.size < MIN_BYTES_PER_S * (ms / 1000)) return 'small';
  if (peak !== null && peak !== undefined && peak < SILENT_PEAK) return 'silent';
  return null;
}

// A 640x480 recording at the recorder's 1 Mbit/s makes ~100 KB a second; even a still, plain
// picture makes more than this. Fewer bytes: the encoder failed (a known fault of some devices).
const MIN_BYTES_PER_S = 4_000;
const SILENT_PEAK = 0.001;  // -60 dBFS, the server's "no sound" line (video.SILENCE_DB)
