// The camera and the recorder: open the front camera, record a few seconds, stop every track.
// Nothing here touches the page; capture.js decides what to show.

// The first type the browser can record wins. H.264 in any container is copied by the server,
// not re-encoded (Safari: MP4 with AAC; Chromium: MP4, WebM or Matroska with Opus); a bare
// 'video/mp4' is VP9 in Chromium, so it comes after them. WebM VP8/Opus: older browsers.
// A stream without sound is recorded without an audio codec (Firefox records nothing at all,
// and never stops, when asked for Opus with no audio track).
export const MIME_TYPES = [
  'video/mp4;codecs=avc1.42E01E,mp4a.40.2',
  'video/mp4;codecs=avc1,opus',
  'video/webm;codecs=h264,opus',
  'video/x-matroska;codecs=avc1,opus',
  'video/x-matroska;codecs=avc1',
  'video/mp4',
  'video/webm;codecs=vp8,opus',
  'video/webm;codecs=vp9,opus',
  'video/webm',
];

const AUDIO_CODEC = /^(?:mp4a(?:\.[\w.]+)?|opus|vorbis)$/;

// How long the browser may take (ms) before the page says so and moves on.
export const LIMITS = { camera: 20_000, play: 3_000, start: 3_000, stop: 5_000 };

// In-app browsers that expose the APIs but are known not to produce a usable recording.
// (Tencent's old X5 kernel in QQ/WeChat on Android; UC's U3 kernel.)
const NO_RECORDING_BROWSERS = [/\bTBS\/0?4[0-4]\d{4}/, /\bUCBrowser\/(?:[0-9]|1[0-2])\./];
// Apps whose own browser a link opens in: WeChat, QQ, Alipay, DingTalk, Weibo, Douyin, Baidu,
// Feishu. Where they cannot record, the person is told to open the page in the phone's browser.
const IN_APP = /MicroMessenger|\bQQ\/|AlipayClient|DingTalk|Weibo|aweme|baiduboxapp|Lark\//;

/** Why this browser cannot record here, as a reason key; null when it can try. */
export function recordingProblem() {
  if (!window.isSecureContext) return 'insecure';
  if (!navigator.mediaDevices?.getUserMedia || typeof window.MediaRecorder !== 'function') {
    return IN_APP.test(navigator.userAgent) ? 'inapp' : 'unsupported';
  }
  if (NO_RECORDING_BROWSERS.some((pattern) => pattern.test(navigator.userAgent))) return 'inapp';
  return null;
}

/** `type` without its audio codec ('video/webm;codecs=vp8,opus' → 'video/webm;codecs=vp8'). */
export function withoutSound(type) {
  const [container, codecs] = type.split(';codecs=');
  if (codecs === undefined) return type;
  const video = codecs.split(',').filter((codec) => !AUDIO_CODEC.test(codec.trim()));
  return video.length ? `${container};codecs=${video.join(',')}` : container;
}

/** The types MediaRecorder says it can record for a stream with or without sound, best first;
 * [''] (the browser chooses) where it cannot say. */
export function recorderTypes(withSound) {
  const supported = window.MediaRecorder?.isTypeSupported?.bind(MediaRecorder);
  if (!supported) return [''];
  const types = MIME_TYPES.map((type) => (withSound ? type : withoutSound(type)));
  const usable = [...new Set(types)].filter((type) => supported(type));
  return usable.length ? usable : [''];
}

const ASKED = Object.freeze({ width: 640, height: 480, frameRate: 30 });
// Camera software that shows something other than a camera: a label naming it is a signal.
const VIRTUAL_CAMERA = /\b(obs|virtual|manycam|xsplit|snap camera|droidcam|splitcam|e2esoft|vcam|screen|capture card|fake)\b/i;

/**
 * What the camera track says of itself that may deserve the operator's look (risk_signals.py):
 * a label naming virtual-camera or screen software (only the matching word is sent, never the
 * label), a picture or frame rate far below what was asked. Signals, never a verdict.
 */
export function cameraSignals(track) {
  const signals = [];
  const named = VIRTUAL_CAMERA.exec(track?.label ?? '');
  if (named) signals.push({ code: 'virtual_camera', detail: named[1].toLowerCase() });
  const { width, height, frameRate } = track?.getSettings?.() ?? {};
  if (width && height && Math.min(width, height) < Math.min(ASKED.width, ASKED.height) / 2) {
    signals.push({ code: 'low_resolution', detail: `${width}x${height}` });
  }
  if (frameRate && frameRate < ASKED.frameRate / 2) {
    signals.push({ code: 'low_frame_rate', detail: String(Math.round(frameRate)) });
  }
  return signals;
}

/** Open the front camera, or the camera `deviceId` the person chose (and, for read-aloud
 * challenges, the microphone, unprocessed). */
export async function openCamera(withSound, deviceId = null) {
  const video = { facingMode: 'user', width: { ideal: ASKED.width }, height: { ideal: ASKED.height } };
  video.frameRate = { ideal: ASKED.frameRate, max: ASKED.frameRate };  // what Juhe needs, and no more for the encoder
  // Echo cancellation, noise suppression and gain control eat a voice reading digits.
  const audio = withSound
    ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false }
    : false;
  if (deviceId) {
    try {
      return await navigator.mediaDevices.getUserMedia({ video: { ...video, deviceId: { exact: deviceId } }, audio });
    } catch (error) {
      // That camera is gone (another phone, or unplugged): the front camera, as usual.
      if (!['OverconstrainedError', 'NotFoundError'].includes(error.name)) throw error;
    }
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio });
  } catch (error) {
    if (error.name !== 'OverconstrainedError') throw error;
    return navigator.mediaDevices.getUserMedia({ video: true, audio });  // any camera will do
  }
}

/** The reason key for a getUserMedia failure (see texts.js `why_*`). */
export function cameraProblem(error) {
  switch (error?.name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return 'denied';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return 'missing';
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return 'busy';
    default:
      return 'unsupported';
  }
}

/** Stop every track of `stream` (the camera light goes off). */
export function stopStream(stream) {
  stream?.getTracks().forEach((track) => track.stop());
}

/** `promise`, or a rejection with a DOMException named 'TimeoutError' (saying `what`) after
 * `ms` milliseconds. */
export function withLimit(promise, ms, what) {
  let timer = 0;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new DOMException(`${what}: no answer in ${ms} ms`, 'TimeoutError')), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * A recorder for `stream`, recording the first of its usable types not in `broken` (a type the
 * browser refuses at once is added to it; a NotSupportedError when none is left), that collects
 * its chunks and resolves `done` with one Blob. `start(ms)` records for `ms` milliseconds and
 * stops by itself; `cancel()` drops the recording. `done` rejects (TimeoutError) when the recorder does not start, or does not stop,
 * within LIMITS: some engines never fire `stop` for a stream they cannot record.
 */
export function makeRecorder(stream, broken = new Set()) {
  const withSound = stream.getAudioTracks().length > 0;
  // 6 s of a noisy phone camera stay under 1 MB (~700 KB) with the sound; see README Benchmarks
  const options = { videoBitsPerSecond: 750_000 };
  if (withSound) options.audioBitsPerSecond = 64_000;
  let recorder = null;
  let mimeType = '';
  for (const type of recorderTypes(withSound).filter((candidate) => !broken.has(candidate))) {
    try {
      recorder = new MediaRecorder(stream, type ? { ...options, mimeType: type } : options);
      mimeType = type;
      break;
    } catch {
      broken.add(type);  // refused at once: the next type
    }
  }
  if (!recorder) throw new DOMException('no recorder type works here', 'NotSupportedError');
  const chunks = [];
  let timer = 0;
  let limit = 0;
  let cancelled = false;
  let settle = null;

  const done = new Promise((resolve, reject) => {
    settle = { resolve, reject };
    recorder.ondataavailable = (event) => {
      if (event.data && event.data.size > 0) chunks.push(event.data);
    };
    recorder.onstart = () => clearTimeout(limit);
    recorder.onstop = () => {
      clearTimeout(timer);
      clearTimeout(limit);
      if (cancelled) return reject(new DOMException('cancelled', 'AbortError'));
      const type = recorder.mimeType || mimeType || chunks[0]?.type || 'video/webm';
      resolve(new Blob(chunks, { type }));
    };
    recorder.onerror = (event) => {
      clearTimeout(timer);
      clearTimeout(limit);
      reject(event.error || new Error('recorder error'));
    };
  });
  done.catch(() => {});  // the caller awaits it; never an unhandled rejection

  /** Stop the recorder if it can be, and settle `done` now with `error` (a recorder that never
   * fires `stop` must not hold the page). */
  function end(error) {
    cancelled = true;
    clearTimeout(timer);
    clearTimeout(limit);
    try {
      if (recorder.state !== 'inactive') recorder.stop();
    } catch {
      // already broken: nothing more to stop
    }
    settle.reject(error);
  }

  function start(ms) {
    recorder.start(1000);  // a chunk a second: a late failure still leaves something
    limit = setTimeout(() => end(new DOMException('the recorder did not start', 'TimeoutError')), LIMITS.start);
    timer = setTimeout(stop, ms);
  }

  function stop() {
    if (recorder.state === 'inactive') return;
    recorder.stop();
    clearTimeout(limit);
    limit = setTimeout(() => end(new DOMException('the recorder did not stop', 'TimeoutError')), LIMITS.stop);
  }

  function cancel() {
    end(new DOMException('cancelled', 'AbortError'));
  }

  return { start, cancel, done, mimeType };
}

/** A file name whose extension matches the recording's type. */
export function fileNameFor(type) {
  if (type.includes('mp4')) return 'capture.mp4';
  if (type.includes('webm')) return 'capture.webm';
  if (type.includes('quicktime')) return 'capture.mov';
  return 'capture.bin';
}

/** A short beep, played through `audio` (an AudioContext made during a tap). */
export function beep(audio) {
  if (!audio) return;
  const tone = audio.createOscillator();
  const gain = audio.createGain();
  tone.frequency.value = 880;
  gain.gain.setValueAtTime(0.2, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.15);
  tone.connect(gain).connect(audio.destination);
  tone.start();
  tone.stop(audio.currentTime + 0.16);
}
