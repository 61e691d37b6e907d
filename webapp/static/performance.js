// Did the person do what the challenge asked while recording? Judged on the phone, before anything
// is sent, from what coach.js saw: one sample per look at the preview (the face's place, the
// light, the eyes' and the mouth's opening from the landmark model) and the microphone's level.
// A miss costs the person one of their attempts at Juhe (267511 no closed eyes, 267520 no open
// mouth, 267516 the first action missing, 267534 lips barely moving, 267539/267540 no voice,
// 267519/267531/267533 face incomplete); here it costs a re-recording, and the person may still
// send (a detector can be wrong). No DOM and no detector in this module: coach.js measures,
// this judges.

export const PASSED = 'passed';
export const MISSED = 'missed';
export const NOT_MEASURED = 'not_measured';

/** The checks of each mode, in the order their words are told (the first missed is named: a
 * covered camera loses the face too, and is told as the dark picture it is). */
export const CHECKS = Object.freeze({
  action: ['light', 'face', 'order', 'mouth', 'eyes'],
  number: ['light', 'face', 'voice', 'lips'],
  silent: ['light', 'face'],
});

const ACTION_CHECK = { 1: 'mouth', 2: 'eyes' };  // challenge action codes (capture.js ACTION_ICONS)

const MIN_LOOKS = 5;         // fewer looks at the recording than this: nothing is said of the picture
const FACE_SHARE = 0.6;      // the face in the oval at a good distance in this share of the looks
const DARK_SHARE = 0.3;      // the picture gone dark (a hand over the camera) in more than this share
const HOLD_MS = 300;         // an action counts when held this long (a blink is shorter)
// Eyes: the eye aspect ratio below this share of the person's own open-eye ratio. The tiny landmark
// model never reads closed eyes under the textbook 0.2 (open ~0.29, closed ~0.23), so the rule is
// relative to the baseline taken before recording.
const EYES_CLOSED = 0.85;
// Mouth: the inner lips' gap over the mouth's width this much over the closed mouth's, and at least
// MOUTH_OPEN (measured on the astronaut: closed 0.14-0.18, talking up to 0.27, open wide 0.30-0.36).
const MOUTH_RISE = 0.1;
const MOUTH_OPEN = 0.25;
const VOICE_MS = 1500;       // number mode: the voice above the floor this long
// Lips moving while the voice is heard: the gap's spread (90th - 10th percentile) over this. A still
// face's reads differ by ~0.025 from frame to frame (sd 0.01); reading digits aloud spreads them
// over 0.15-0.25.
const LIPS_SPREAD = 0.045;

function quantile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

/** The typical time between looks (ms), for how long one look stands for. */
function step(samples) {
  const gaps = samples.slice(1).map((s, i) => s.t - samples[i].t);
  return quantile(gaps, 0.5) ?? 250;
}

/** When `test` first held for HOLD_MS in a run of looks at or after `from` (ms), or null. */
function firstHeld(samples, test, from = -Infinity) {
  const dt = step(samples);
  let start = null;
  for (const sample of samples) {
    if (sample.t >= from && test(sample)) {
      start ??= sample.t;
      if (sample.t - start + dt >= HOLD_MS) return start;
    } else {
      start = null;
    }
  }
  return null;
}

/**
 * The verdict on one recording.
 * - `mode`: 'action' | 'number' | 'silent'; `actions`: the challenge's action codes, in order.
 * - `samples`: looks during recording, { t (ms from its start), face: 'ok' | 'none' | 'many' | 'far'
 *   | 'close' | 'offCentre' | null (no detector), dark: bool, ear, mouth (null: no landmarks) }.
 * - `before`: looks just before recording with the face in place ({ ear, mouth }): the baseline.
 * - `voiced`: the level meter's ticks that heard the voice, { t: ms from the start, ms: how long
 *   each stands for } (null: no meter).
 * Returns { verdict: 'passed' | 'missed' | 'not_measured', checks: { name: status }, missed: the
 * first missed check's name or null, looks, fps }.
 */
export function judge({ mode, actions = [], samples, before = [], voiced = null, durationMs }) {
  const checks = {};
  const looked = samples.length >= MIN_LOOKS;
  const faced = samples.filter((s) => s.face !== null);
  checks.face = looked && faced.length >= MIN_LOOKS
    ? (faced.filter((s) => s.face === 'ok').length >= FACE_SHARE * faced.length ? PASSED : MISSED)
    : NOT_MEASURED;
  checks.light = looked ? (samples.filter((s) => s.dark).length > DARK_SHARE * samples.length ? MISSED : PASSED)
    : NOT_MEASURED;
  const measured = samples.filter((s) => s.ear !== null && s.mouth !== null);
  const landmarks = measured.length >= MIN_LOOKS;
  if (mode === 'action') Object.assign(checks, judgeActions(actions, measured, before, landmarks));
  if (mode === 'number') Object.assign(checks, judgeReading(measured, voiced, landmarks));
  const names = CHECKS[mode] ?? CHECKS.silent;
  const statuses = names.map((name) => checks[name] ?? NOT_MEASURED);
  const missed = names.find((name) => checks[name] === MISSED) ?? null;
  const seconds = (durationMs ?? (samples.at(-1)?.t ?? 0)) / 1000;
  return {
    verdict: missed ? MISSED : statuses.every((s) => s === NOT_MEASURED) ? NOT_MEASURED : PASSED,
    checks: Object.fromEntries(names.map((name, i) => [name, statuses[i]])),
    missed,
    looks: samples.length,
    fps: seconds > 0 ? Math.round((samples.length / seconds) * 10) / 10 : 0,
  };
}

/** The two actions, each held, the second begun after the first. */
function judgeActions(actions, measured, before, landmarks) {
  if (!landmarks || actions.length !== 2) return { mouth: NOT_MEASURED, eyes: NOT_MEASURED, order: NOT_MEASURED };
  // The person's own open eyes and closed mouth: before recording, else most of the recording.
  const ear = quantile(before.map((s) => s.ear), 0.5) ?? quantile(measured.map((s) => s.ear), 0.75);
  const mouth = quantile(before.map((s) => s.mouth), 0.5) ?? quantile(measured.map((s) => s.mouth), 0.25);
  const tests = {
    mouth: (s) => s.mouth >= Math.max(mouth + MOUTH_RISE, MOUTH_OPEN),
    eyes: (s) => s.ear < EYES_CLOSED * ear,
  };
  const [first, second] = actions.map((code) => ACTION_CHECK[code]);
  const found = { mouth: firstHeld(measured, tests.mouth), eyes: firstHeld(measured, tests.eyes) };
  const firstAt = found[first];
  const secondAfter = firstAt === null ? null : firstHeld(measured, tests[second], firstAt + 1);
  return {
    mouth: found.mouth === null ? MISSED : PASSED,
    eyes: found.eyes === null ? MISSED : PASSED,
    // Both done, but not one after the other as asked (a missing action is named by itself).
    order: found.mouth !== null && found.eyes !== null && secondAfter === null ? MISSED
      : found.mouth !== null && found.eyes !== null ? PASSED : NOT_MEASURED,
  };
}

/** The voice heard long enough, and the lips moving while it was. */
function judgeReading(measured, voiced, landmarks) {
  if (voiced === null) {
    return { voice: NOT_MEASURED, lips: NOT_MEASURED };
  }
  const voice = voiced.reduce((sum, tick) => sum + tick.ms, 0) >= VOICE_MS ? PASSED : MISSED;
  if (!landmarks || voice === MISSED) return { voice, lips: NOT_MEASURED };
  const near = (t) => voiced.some((v) => Math.abs(v.t - t) <= 200);
  const gaps = measured.filter((s) => near(s.t)).map((s) => s.mouth);
  if (gaps.length < MIN_LOOKS) return { voice, lips: NOT_MEASURED };
  return { voice, lips: quantile(gaps, 0.9) - quantile(gaps, 0.1) >= LIPS_SPREAD ? PASSED : MISSED };
}

/** The eye aspect ratio (both eyes' mean) and the mouth's opening from 68 landmark points. */
export function measure(points) {
  const d = (a, b) => Math.hypot(points[a].x - points[b].x, points[a].y - points[b].y);
  const eye = (p) => (d(p + 1, p + 5) + d(p + 2, p + 4)) / (2 * d(p, p + 3));
  const width = d(48, 54);
  return {
    ear: (eye(36) + eye(42)) / 2,
    mouth: width ? (d(61, 67) + d(62, 66) + d(63, 65)) / 3 / width : null,
  };
}
