// The camera and the recorder: open the front camera, record a few seconds, stop every track.
// Nothing here touches the page; capture.js decides what to show.

// The first type the browser can record wins. H.264 in any container is copied by the server,
// not re-encoded (Safari: MP4 with AAC; Chromium: MP4, WebM or Matroska with Opus); a bare
// 'video/mp4' is VP9 in Chromium, so it comes after them. WebM VP8/Opus: older browsers.
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

// In-app browsers that expose the APIs but are known not to produce a usable recording.
// (Tencent's old X5 kernel in QQ/WeChat on Android; UC's U3 kernel.)
const NO_RECORDING_BROWSERS = [/\bTBS\/0?4[0-4]\d{4}/, /\bUCBrowser\/(?:[0-9]|1[0-2])\./];

/** Why this browser cannot record here, as a reason key; null when it can try. */
export function recordingProblem() {
  if (!window.isSecureContext) return 'insecure';
  if (!navigator.mediaDevices?.getUserMedia || typeof window.MediaRecorder !== 'function') {
    return 'unsupported';
  }
  if (NO_RECORDING_BROWSERS.some((pattern) => pattern.test(navigator.userAgent))) return 'inapp';
  return null;
}

/** The first MIME type MediaRecorder supports, or '' to let the browser choose. */
export function pickMimeType() {
  const supported = MediaRecorder.isTypeSupported?.bind(MediaRecorder);
  return supported ? MIME_TYPES.find((type) => supported(type)) ?? '' : '';
}

/** Open the front camera, or the camera `deviceId` the person chose (and, for read-aloud
 * challenges, the microphone, unprocessed). */
export async function openCamera(withSound, deviceId = null) {
  const video = { facingMode: 'user', width: { ideal: 640 }, height: { ideal: 480 } };
  video.frameRate = { ideal: 30, max: 30 };  // what Juhe needs, and no more for the encoder
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

/**
 * A recorder for `stream` that collects its chunks and resolves `done` with one Blob.
 * `start(ms)` records for `ms` milliseconds and stops by itself; `cancel()` drops the recording.
 */
export function makeRecorder(stream) {
  const mimeType = pickMimeType();
  // 6 s of a noisy phone camera stay under 1 MB (~700 KB) with the sound; see README Benchmarks
  const options = { videoBitsPerSecond: 750_000 };
  if (stream.getAudioTracks().length) options.audioBitsPerSecond = 64_000;
  if (mimeType) options.mimeType = mimeType;
  const recorder = new MediaRecorder(stream, options);  // throws NotSupportedError early
  const chunks = [];
  let timer = 0;
  let cancelled = false;

  const done = new Promise((resolve, reject) => {
    recorder.ondataavailable = (event) => {
      if (event.data && event.data.size > 0) chunks.push(event.data);
    };
    recorder.onstop = () => {
      clearTimeout(timer);
      if (cancelled) return reject(new DOMException('cancelled', 'AbortError'));
      const type = recorder.mimeType || mimeType || chunks[0]?.type || 'video/webm';
      resolve(new Blob(chunks, { type }));
    };
    recorder.onerror = (event) => {
      clearTimeout(timer);
      reject(event.error || new Error('recorder error'));
    };
  });
  done.catch(() => {});  // the caller awaits it; never an unhandled rejection

  function start(ms) {
    recorder.start(1000);  // a chunk a second: a late failure still leaves something
    timer = setTimeout(stop, ms);
  }

  function stop() {
    if (recorder.state !== 'inactive') recorder.stop();
  }

  function cancel() {
    cancelled = true;
    stop();
  }

  return { start, cancel, done };
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
