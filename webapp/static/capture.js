// The capture page: show the challenge, record a few seconds of video, upload it, show the outcome.
//
// One object, `page`, holds everything that changes; `page.phase` (one of PHASES) says where the
// page is, and setPhase() changes it and shows the elements whose data-show lists it. The
// server's state is the truth: after anything unexpected the page asks GET /state and draws
// itself from the answer. Nothing is recorded, and the camera stays
// closed, until the person has agreed on the consent screen; the live checks (coach.js, with its
// face detector) load only once the camera is live.

import { english, loaded, pick, t } from './texts.js';
import * as media from './media.js';
import * as net from './net.js';

/** The server's words, named once (webapp/vocabulary.py): a session's status (SessionStatus),
 * what became of one video (Result), and a session's mode (Mode). */
const STATUS = Object.freeze({ PENDING: 'pending', PASSED: 'passed', FAILED: 'failed', EXPIRED: 'expired' });
const RESULT = Object.freeze({ PASSED: 'passed', FAILED: 'failed', RETRY: 'retry', REJECTED: 'rejected' });
const MODE = Object.freeze({ SILENT: 'silent', NUMBER: 'number', ACTION: 'action' });

const COUNTDOWN_S = 3;
const RECORD_MS = 6000;
const CUE_MS = [700, 3200, 5300];  // action mode: first action, second action, "hold still"
const PASS_RETURN_S = 5;  // a pass goes back to return_url by itself after this countdown; nothing else does
const POLL_MS = { first: 1500, max: 5000 };  // a released attempt (lease 20 s) shows within ~5 s of it
const STATE_WAIT_S = 15;  // the server may hold a state answer this long (page_state.py)
const RECOVERY = { tries: 20, everyMs: 3000 };  // a service answering 503 (its database restarting) is asked for a minute
const ACTION_ICONS = { 1: 'mouth.svg', 2: 'eyes.svg' };
const CAPTURING = ['camera', 'ready', 'countdown', 'recording', 'redo'];
const CAMERA_KEY = 'liveness:camera';  // localStorage: the camera the person chose last
const COACH_WAIT_MS = 5000;  // the live checks not loaded by then: recording may start without them
const STILL_PHASES = ['uploading', 'verifying', 'passed'];  // the last frame of the recording stays on screen
const BROKEN_TRIES = 2;  // broken recordings (each with another recorder type) before the camera app

const root = document.getElementById('capture');
const base = root.dataset.base;
const mode = root.dataset.mode;
const shown = [...document.querySelectorAll('[data-show]')];
const digits = document.getElementById('digits');
const steps = [...document.querySelectorAll('#steps li')];
const preview = document.getElementById('preview');
const stage = document.getElementById('stage');
const stageBox = stage.parentElement;
const hint = document.getElementById('hint');
const level = document.getElementById('level');
const cameraChoice = document.getElementById('camera');
const ring = document.getElementById('ring');
const count = document.getElementById('count');
const prompt = document.getElementById('prompt');
const status = document.getElementById('status');
const progress = document.getElementById('progress');
const startButton = document.getElementById('start');
const redoButton = document.getElementById('redo');
const editLink = document.getElementById('edit');
const resendButton = document.getElementById('resend');
const retryButton = document.getElementById('retry');
const returnLink = document.getElementById('return');
const why = document.getElementById('why');
const challengeTitle = document.getElementById('challenge-title');
const resultTitle = document.getElementById('result-title');
const countdown = document.getElementById('countdown');
const fixes = document.getElementById('fixes');
const otherFixes = document.getElementById('other-fixes');
const otherFixList = document.getElementById('other-fix-list');
const cameraAgainButton = document.getElementById('camera-again');
const fallbackHint = document.getElementById('fallback-hint');
const fallbackRemember = document.getElementById('fallback-remember');
const fileInput = document.getElementById('file');
const useFileButton = document.getElementById('use-file');
const switchButton = document.getElementById('switch-action');
const sendAnywayButton = document.getElementById('send-anyway');
const AGREED_KEY = `liveness:agreed:${base}`;  // sessionStorage: agreed, then reloaded for a mode change
// The consent text's version as the server rendered it, and the page's language (consent.py).
const [consentVersion, consentLanguage] = (root.dataset.consent ?? '').split(' ');

/** Every phase the page can be in; an element's data-show names some of them (capture.html, and
 * tests/test_pages.py checks that the two agree).
 * consent → start → camera → ready → countdown → recording → uploading → verifying → passed |
 * retry | over; also: declined (no consent), redo (the recording failed its own check and was not
 * sent), fallback (file input), resend (upload lost), paused (page hidden), blank (first paint). */
export const PHASES = Object.freeze([
  'blank', 'consent', 'declined', 'start', 'camera', 'ready', 'countdown', 'recording', 'redo',
  'uploading', 'verifying', 'passed', 'retry', 'over', 'fallback', 'resend', 'paused',
]);

const framed = window.parent !== window;

/** Everything the page knows that changes: one object, so where the page stands is in one place. */
const page = {
  phase: root.dataset.phase,  // one of PHASES; only setPhase() changes it
  state: JSON.parse(document.getElementById('initial-state').textContent),  // the server's, last seen
  challenge: null,       // the challenge on screen
  stream: null,          // the camera (and microphone) while open
  recorder: null,        // the recording in progress
  cues: [],              // timers of the action prompts
  beeper: null,          // AudioContext for the action prompts' beeps
  upload: null,          // the last upload, kept so a lost one can be sent again
  fallbackReason: null,  // why the page uses the file input instead of the camera
  chosenFile: null,      // a file picked before its challenge arrived (sent once it has)
  toldParent: false,     // the framing page has been told the result
  returnTimer: null,     // the countdown of a pass going back to return_url by itself
  agreed: false,         // the person agreed on the consent screen (this page's life)
  afterConsent: null,    // what agreeing goes on to
  live: null,            // coach.js, loaded once a camera is live (null: not, or it failed)
  coach: null,           // its live checks while the camera is open
  startable: false,      // the checks let recording start (or there are none)
  openings: 0,           // camera requests made: only the newest may keep what it opens
  brokenTypes: new Set(),  // recorder types that made a broken recording here: not used again
  brokenRecordings: 0,   // how many recordings came out broken (BROKEN_TRIES: the camera app)
  recorded: null,        // the recorder type of the last recording sent
  micTrouble: null,      // 'microphone_refused' | 'microphone_silent': number mode may become action
  still: false,          // the preview shows the recording's last frame (the camera is closed)
  unsent: null,          // a recording the page's own check found lacking, kept in case the person sends it anyway
  startAnyway: false,    // the start button says 仍然开始: the live checks had not passed
  hidden: false,         // the page was hidden during this attempt (a risk signal)
  switched: false,       // the camera track ended, was muted or changed during the recording (a signal)
};

function setPhase(next) {
  if (!PHASES.includes(next)) {
    console.error('capture.js: unknown phase', next);
    throw new Error(`unknown phase: ${next}`);
  }
  page.phase = next;
  root.dataset.phase = next;
  for (const element of shown) element.hidden = !element.dataset.show.split(' ').includes(next);
  // Nothing to show in it; or framed and passed: the operator's page takes over, the frame stays short.
  if (STILL_PHASES.includes(next) && (!page.still || (framed && next === 'passed'))) stageBox.hidden = true;
  startButton.disabled = !(next === 'ready' && page.startable);
  cameraChoice.disabled = next !== 'ready';
  switchButton.hidden = !(page.micTrouble && page.state.action_fallback && ['redo', 'fallback'].includes(next));
  sendAnywayButton.hidden = !(next === 'redo' && page.unsent);
}

/** Move the focus to `element` (a phase's heading or button), for keyboards and screen readers. */
function focusOn(element) {
  element?.focus({ preventScroll: true });
}

/** Write to the one live region, one line per part. */
function say(...parts) {
  status.textContent = parts.filter(Boolean).join('\n');
}

/** Like say(), with `heard` read out first but not shown again: it is on screen already (the
 * words on the oval), and one screen says a thing once. */
function sayHeard(heard, ...parts) {
  say(...parts);
  if (heard) status.prepend(Object.assign(document.createElement('span'), { className: 'visually-hidden', textContent: `${heard} ` }));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// -- drawing the server's state ---------------------------------------------------------------

/** The first draw follows the phase the server painted (capture.html's data-phase, chosen by
 * pages.capture from the same state), so that nothing jumps and the choice is made once:
 * 'consent' (nothing in flight, no verdict yet) stays on the consent screen, or goes past it
 * when the person agreed before a reload; 'blank' (the server left it to the state) is drawn
 * from the state. */
function firstDraw() {
  if (page.phase === 'consent') return whenAgreed(() => startAttempt(page.state));
  return showState(page.state);
}

/** An attempt at the state's open challenge, or at a new one. */
function startAttempt(s) {
  return s.challenge ? beginAttempt(s.challenge) : newAttempt();
}

/** Draw the server's state: an end, a verdict being made, a challenge asked for after the last
 * verdict (the retry button, or action mode chosen, then reloaded), or the last verdict. */
function showState(next) {
  page.state = next;
  if (next.status === STATUS.PENDING) {
    if (inFlight(next)) return waitForVerdict();
    if (next.challenge || !next.last) return whenAgreed(() => startAttempt(next));
  }
  return showVerdict(next.last);
}

/** A video of the session is being verified (the state's `in_flight`). */
function inFlight(s) {
  return Boolean(s.in_flight);
}

/** One of the page's milestones, for the operator's drop-off funnel (page_events.py). */
function milestone(name, detail = null) {
  net.reportEvent(base, detail ? { name, detail } : { name });
}

// -- consent ------------------------------------------------------------------------------------

/** Go on with `then` once the person has agreed (at once if they already have). */
function whenAgreed(then) {
  if (page.agreed) return then();
  page.afterConsent = then;
  setPhase('consent');
  milestone('consent_shown');
  say('');
  return undefined;
}

function agree() {
  page.agreed = true;
  net.reportEvent(base, { name: 'consent_given', version: consentVersion, language: consentLanguage });
  window.scrollTo(0, 0);  // the consent may have been scrolled to its button: the next screen fits
  const then = page.afterConsent;
  page.afterConsent = null;
  then?.();
  focusOn(challengeTitle);
}

function decline() {
  setPhase('declined');
  net.reportEvent(base, { name: 'consent_declined', version: consentVersion, language: consentLanguage });
  // Where the operator gave one, a way back to its page (e.g. to choose another way to verify).
  const url = safeUrl(page.state.return_url);
  if (url) offerReturn(url, false);
  focusOn(document.getElementById('declined-title'));
}

function reconsider() {
  returnLink.hidden = true;
  setPhase('consent');
  milestone('consent_shown');
  focusOn(document.getElementById('consent-title'));
}

/** Why it is over: the answer itself (e.g. name and ID number do not match), or attempts used
 * up, when the last problem's own advice ("record again") no longer applies. */
function endWords(result) {
  if (!result) return [t('failed'), t('over')];
  const message = pick(result.message, result.message_en);
  if (result.final) return [message, t('over')];
  // The server names the problem in a few words ("光线太暗"): the advice to record again no
  // longer applies.
  const problem = pick(result.problem, result.problem_en);
  return [t('usedUp'), problem ? t('lastProblem', { problem }) : '', t('startOver')];
}

function renderChallenge(next) {
  page.challenge = next;
  if (digits) showDigits(next.digits ?? '');
  (next.actions ?? []).forEach((action, i) => {
    const item = steps[i];
    if (!item) return;
    item.querySelector('img').src = new URL(ACTION_ICONS[action.code], import.meta.url).href;
    const name = item.querySelector('.step-name');
    if (!english) name.textContent = action.zh;
    else {  // the Chinese name stays beside the English one, smaller
      const zh = Object.assign(document.createElement('span'), { lang: 'zh-CN', className: 'zh' });
      zh.textContent = `(${action.zh})`;
      name.replaceChildren(`${action.en} `, zh);
    }
  });
  // Silent mode has nothing to remember: its title above says it all, once.
  fallbackHint.textContent = [t('fallbackIntro'), fallbackWords(next)].filter(Boolean).join('\n');
  fallbackRemember.textContent = next.digits || next.actions ? t('fallbackRemember') : '';
}

/** The digits as one big number to the eye, and one by one to a screen reader ("1 2 3 4", not
 * "one thousand two hundred thirty-four"). */
function showDigits(text) {
  const seen = Object.assign(document.createElement('span'), { textContent: text });
  seen.setAttribute('aria-hidden', 'true');
  const heard = Object.assign(document.createElement('span'), { textContent: spaced(text), className: 'visually-hidden' });
  digits.replaceChildren(...(text ? [seen, heard] : []));
}

function spaced(text, space = ' ') {
  return [...text].join(space);
}

function clearChallenge() {
  page.challenge = null;
  if (digits) showDigits('');
  for (const item of steps) item.querySelector('.step-name').textContent = '';
}

function fallbackWords(next) {
  if (next.digits) return t('fallbackNumber', { digits: spaced(next.digits, '\u00a0') });  // on one line
  if (next.actions) {
    const [first, second] = next.actions.map((a) => (english ? a.en : a.zh));
    return t('fallbackAction', { first, second });
  }
  return '';
}

// -- an attempt: challenge, camera, recording ---------------------------------------------------

async function newAttempt() {
  clearChallenge();
  page.hidden = false;
  fileInput.disabled = true;
  setPhase(page.fallbackReason ? 'fallback' : 'start');
  say(t('preparing'));
  let answer;
  try {
    answer = await net.requestChallenge(base);
  } catch {
    return offerRetry(t('network'));
  }
  if (answer.status === 201 && answer.body?.challenge) {
    page.state = answer.body.state;
    return beginAttempt(answer.body.challenge);
  }
  return handleRefusal(answer);
}

function beginAttempt(next) {
  renderChallenge(next);
  if (page.fallbackReason) return useFallback(page.fallbackReason);
  const problem = media.recordingProblem() ?? (canRecord() ? null : 'recorder');
  if (problem) milestone('camera_unavailable', problem);
  return problem ? useFallback(problem) : openCamera();
}

/** Whether recording in the page is still worth trying: fewer than BROKEN_TRIES broken
 * recordings, and a recorder type left that has not made one. */
function canRecord() {
  return page.brokenRecordings < BROKEN_TRIES
    && media.recorderTypes(mode === MODE.NUMBER).some((type) => !page.brokenTypes.has(type));
}

async function openCamera() {
  const opening = ++page.openings;
  page.chosenFile = null;
  page.startable = false;
  forgetStill();
  setPhase('camera');
  say(t('cameraOpening'));
  let opened;
  const request = media.openCamera(mode === MODE.NUMBER, remembered(CAMERA_KEY));
  try {
    opened = await media.withLimit(request, media.LIMITS.camera, 'camera');
  } catch (error) {
    if (opening !== page.openings) return undefined;  // a newer request decides
    if (error.name !== 'TimeoutError') return cameraFailed(error, opening);
    page.openings += 1;
    request.then(media.stopStream, () => {});  // a camera that opens after all is closed at once
    return useFallback('slow');
  }
  // Hidden and shown again while this request waited: a newer one owns the camera, and what
  // this one opened is stopped at once (else the camera and microphone would stay on).
  if (opening !== page.openings) return media.stopStream(opened);
  page.stream = opened;
  milestone('camera_granted');
  if (page.phase !== 'camera') return releaseCamera();  // the page was hidden meanwhile
  preview.srcObject = page.stream;
  try {
    // WeChat on iOS shows a black box without an explicit play(); some engines never settle it.
    await media.withLimit(preview.play(), media.LIMITS.play, 'play');
  } catch {
    // The preview may stay still, but the recorder reads the stream, not the element.
  }
  // The person chose the camera app, or the page was hidden, while the preview started.
  if (page.stream !== opened || page.phase !== 'camera') return undefined;
  setPhase('ready');
  say(t('ready'));
  startCoach(page.stream);
}

/** The camera (and, in number mode, the microphone) could not be opened. In number mode, ask
 * for the camera alone: if it opens, the microphone is the problem, and action mode needs none. */
async function cameraFailed(error, opening) {
  milestone('camera_refused', error.name);
  const problem = media.cameraProblem(error);
  if (mode !== MODE.NUMBER || !['denied', 'missing'].includes(problem)) return useFallback(problem);
  let alone = null;
  try {
    alone = await media.withLimit(media.openCamera(false, remembered(CAMERA_KEY)), media.LIMITS.camera, 'camera');
  } catch {
    // the camera too: it is not only the microphone
  }
  media.stopStream(alone);
  if (opening !== page.openings) return undefined;
  if (!alone) return useFallback(problem);
  page.micTrouble = 'microphone_refused';
  return useFallback('microphone');
}

/** Record the rest of this session in action mode (the server draws its challenge), then load
 * the page again as an action-mode page; the person's consent is kept for this tab. */
async function switchToAction() {
  switchButton.disabled = true;
  let answer = null;
  try {
    answer = await net.switchToAction(base, page.micTrouble);
  } catch {
    // the network: say so below
  }
  switchButton.disabled = false;
  if (answer?.status === 201) {
    stopCapture();
    try {
      window.sessionStorage.setItem(AGREED_KEY, '1');  // the action-mode page need not ask again
    } catch {
      // not kept: the action-mode page asks for consent (its text says no sound is recorded)
    }
    window.location.reload();
    return undefined;
  }
  if (answer?.body?.state) page.state = answer.body.state;
  return answer ? handleRefusal(answer) : say(t('network'));
}

/** Load the live checks (after the camera: they must not delay it or weigh on the page before
 * it) and follow what they say. Without them (they failed to load) recording may start at once,
 * as it always could. */
async function startCoach(forStream) {
  // A module that is slow to come must not hold the button back either.
  const late = setTimeout(() => {
    if (page.stream === forStream && !page.coach) followChecks({ key: null, startable: true });
  }, COACH_WAIT_MS);
  page.live ??= await import('./coach.js').catch(() => null);
  clearTimeout(late);
  if (page.stream !== forStream || !CAPTURING.includes(page.phase)) return;  // closed meanwhile
  if (!page.live) return followChecks({ key: null, startable: true });
  try {
    page.coach = page.live.startCoach({ video: preview, stage, level, stream: page.stream, onChange: followChecks });
  } catch {
    followChecks({ key: null, startable: true });
  }
  offerCameraChoice(forStream);
}

/** Show what the checks say: words on the oval and in the live region, and whether (and how)
 * recording may start: 开始录制 when the checks pass, 仍然开始 when they have failed a while. */
function followChecks({ key, words, ok, startable: may }) {
  const onOval = key !== null && key !== 'good' && key !== 'checking' && Boolean(words);  // shown over the preview
  page.startable ||= may;  // once allowed, for as long as this camera is open
  page.startAnyway = page.startable && !ok && key !== null;
  startButton.textContent = page.startAnyway ? t('startAnyway') : t('start');
  if (page.phase === 'ready') {
    startButton.disabled = !page.startable;
    if (key === null) say(t('ready'));
    else if (key !== 'checking') {
      const next = ok ? t('goodToGo') : page.startable ? t('orStartAnyway') : '';
      if (onOval) sayHeard(words, next);  // the words are on the oval: heard here, not shown twice
      else say(words, next);
    }
  }
  hint.textContent = onOval ? words : '';
}

function stopCoach() {
  page.coach?.stop();
  page.coach = null;
  hint.textContent = '';
}

// -- which camera -------------------------------------------------------------------------------

/** Where the phone has several front cameras (or opened an infrared one), let the person pick;
 * the choice is remembered for the next visit. */
async function offerCameraChoice(forStream) {
  const track = forStream.getVideoTracks()[0];
  const cameras = await page.live.frontCameras();
  if (page.stream !== forStream) return;
  const current = track?.getSettings?.().deviceId ?? '';
  const other = cameras.find((c) => c.deviceId !== current && !page.live.isInfrared(c.label));
  if (track && page.live.isInfrared(track.label) && other) return switchCamera(other.deviceId);
  const box = cameraChoice.parentElement;
  box.hidden = cameras.length < 2;
  cameraChoice.replaceChildren(...cameras.map((camera, i) => {
    const option = new Option(camera.label || t('cameraN', { n: i + 1 }), camera.deviceId);
    option.selected = camera.deviceId === current;
    return option;
  }));
}

function switchCamera(deviceId) {
  remember(CAMERA_KEY, deviceId);
  stopCapture();
  openCamera();
}

function remembered(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;  // storage refused (private mode, a sandboxed frame): ask the default camera
  }
}

function remember(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // not remembered: the person chooses again next time
  }
}

async function startRecording() {
  if (page.phase !== 'ready' || !page.startable) return;
  try {
    page.recorder = media.makeRecorder(page.stream, page.brokenTypes);
  } catch {
    return useFallback('recorder');  // no recorder type left that works here
  }
  if (mode === MODE.ACTION) page.beeper = makeBeeper();
  milestone('coaching_passed', page.startAnyway ? 'anyway' : 'ready');
  setPhase('countdown');
  say(t('countdown', { n: COUNTDOWN_S }));
  for (let n = COUNTDOWN_S; n > 0; n -= 1) {
    count.textContent = String(n);
    await sleep(1000);
    if (page.phase !== 'countdown') return;  // paused while counting
  }
  count.textContent = '';
  await record();
}

async function record() {
  page.unsent = null;  // a recording kept from before is replaced by this one
  setPhase('recording');
  ring.style.animationDuration = `${RECORD_MS}ms`;
  const { mimeType } = page.recorder;
  try {
    page.recorder.start(RECORD_MS);
  } catch {
    return recorderBroken(mimeType, 'stuck');
  }
  page.coach?.recording(true);
  milestone('recording_started');
  const track = page.stream?.getVideoTracks()[0];
  const device = track?.getSettings?.().deviceId;
  page.switched = false;
  const switched = () => { page.switched = true; };
  track?.addEventListener('ended', switched);
  track?.addEventListener('mute', switched);
  const started = performance.now();
  promptDuringRecording();
  let blob;
  try {
    blob = await page.recorder.done;
  } catch (error) {
    if (error.name === 'AbortError') return;  // cancelled: the page went to the background
    if (error.name === 'TimeoutError') return recorderBroken(mimeType, 'stuck');
    return recorderBroken(mimeType, 'small', 'fault_error');
  } finally {
    stopCues();
    page.recorder = null;
    track?.removeEventListener('ended', switched);
    track?.removeEventListener('mute', switched);
    if (device && track?.getSettings?.().deviceId !== device) page.switched = true;
  }
  const ms = performance.now() - started;
  const problem = page.live
    ? page.live.recordingFault(blob, { ms, wantedMs: RECORD_MS, peak: mode === MODE.NUMBER ? page.coach?.heardPeak() : null })
    : blob.size ? null : 'small';
  const performed = page.coach?.performed({
    mode, actions: (page.challenge.actions ?? []).map((a) => a.code), durationMs: ms,
  }) ?? null;
  page.coach?.recording(false);
  if (page.phase !== 'recording') return;  // hidden while the recorder stopped
  if (problem === 'small' || problem === 'short') return recorderBroken(mimeType, problem);
  if (problem) return redoLocally(problem);
  const recording = {
    file: blob, name: media.fileNameFor(blob.type), challengeId: page.challenge.id, mimeType,
    checks: performed && checksToSend(performed), signals: signals(track),
  };
  if (performed?.verdict === 'missed') return offerRedo(recording, performed.missed);
  return sendRecording(recording);
}

/** What may deserve the operator's look (risk_signals.py), from the camera and this attempt. */
function signals(track) {
  const found = media.cameraSignals(track);
  if (page.hidden) found.push({ code: 'page_hidden' });
  if (page.switched) found.push({ code: 'camera_switched' });
  return found;
}

/** What the page's own check saw, for the operator (stored on the attempt): per check passed,
 * missed or not measured; and whether the person sent it anyway. */
function checksToSend({ verdict, checks, looks, fps }) {
  return { verdict, checks, looks, fps, sent_anyway: false };
}

/** Close the camera, keep its last frame on screen, and send a recording. */
function sendRecording({ file, name, challengeId, mimeType, checks, signals: noticed }) {
  stopCoach();
  keepStill();
  releaseCamera();
  page.recorded = mimeType;
  return send({ file, name, challengeId, checks, signals: noticed });
}

/** The person did not do what the challenge asked (performance.js): say what was missed, in their
 * words, and offer to record again (nothing sent, nothing counted); 仍然发送 sends it as it is,
 * since the page's check can be wrong. */
function offerRedo(recording, missed) {
  milestone('redo', `missed_${missed}`);
  page.unsent = recording;
  setPhase('redo');
  say(t(`missed_${missed}`), t('notSent'), t('orSendAnyway'));
  focusOn(redoButton);
}

function sendAnyway() {
  if (page.phase !== 'redo' || !page.unsent) return;
  const recording = page.unsent;
  page.unsent = null;
  return sendRecording({ ...recording, checks: recording.checks && { ...recording.checks, sent_anyway: true } });
}

/** The recorder made a broken recording (or none): never record that way again here. Record
 * again with the next type, or, with none left, use the phone's camera app. */
function recorderBroken(mimeType, problem, why = `fault_${problem}`) {
  milestone('redo', why);  // fault_error: the recorder itself failed (the person reads fault_small)
  page.brokenTypes.add(mimeType);
  page.brokenRecordings += 1;
  if (!canRecord()) return useFallback('recorder');
  setPhase('redo');
  say(t(`fault_${problem}`), t('notSent'), t('nextWay'));
  focusOn(redoButton);
  return undefined;
}

/** The recording failed its own check: say why and record again with the camera still open.
 * Nothing was sent, so no attempt is spent. */
function redoLocally(problem) {
  milestone('redo', `fault_${problem}`);
  if (problem === 'silent') page.micTrouble = 'microphone_silent';
  setPhase('redo');
  say(t(`fault_${problem}`), t('notSent'), problem === 'silent' && page.state.action_fallback ? t('orActions') : '');
  focusOn(redoButton);
}

function recordAgainLocally() {
  if (page.phase !== 'redo') return;
  page.unsent = null;
  setPhase('ready');
  say(t('ready'));
  if (!page.coach) followChecks({ key: null, startable: true });
}

function promptDuringRecording() {
  if (mode === MODE.NUMBER) {
    prompt.textContent = page.challenge.digits;
    say(t('recordingNumber', { digits: spaced(page.challenge.digits, '\u00a0') }));  // on one line
  } else if (mode === MODE.ACTION) {
    say(t('recordingAction'));
    cue(t('holdStill'), -1);
    const [first, second] = page.challenge.actions;
    page.cues = [
      setTimeout(() => cue(t(`action${first.code}`), 0, true), CUE_MS[0]),
      setTimeout(() => cue(t(`action${second.code}`), 1, true), CUE_MS[1]),
      setTimeout(() => cue(t('actionDone'), -1), CUE_MS[2]),
    ];
  } else {
    prompt.textContent = t('holdStill');
    say(t('recordingSilent'));
  }
}

/** Show one action prompt over the preview, mark its step, and beep for closed eyes. */
function cue(words, index, withBeep = false) {
  prompt.textContent = words;
  steps.forEach((item, i) => item.classList.toggle('now', i === index));
  if (index >= 0) say(words);
  if (withBeep) media.beep(page.beeper);
}

function stopCues() {
  page.cues.forEach(clearTimeout);
  page.cues = [];
  prompt.textContent = '';
  steps.forEach((item) => item.classList.remove('now'));
  page.beeper?.close().catch(() => {});
  page.beeper = null;
}

function makeBeeper() {
  const Context = window.AudioContext || window.webkitAudioContext;
  try {
    return Context ? new Context() : null;
  } catch {
    return null;
  }
}

/** Stop recording without keeping anything, and close the camera. */
function stopCapture() {
  page.recorder?.cancel();
  page.recorder = null;
  stopCues();
  stopCoach();
  releaseCamera();
}

/** Keep the preview's last frame on screen (as its poster) while the video is sent and verified,
 * with the camera already closed. */
function keepStill() {
  const canvas = document.createElement('canvas');
  canvas.width = preview.videoWidth;
  canvas.height = preview.videoHeight;
  if (!canvas.width || !canvas.height) return;
  try {
    canvas.getContext('2d').drawImage(preview, 0, 0);
    preview.poster = canvas.toDataURL('image/jpeg', 0.8);
    page.still = true;
  } catch {
    // no still: the screens show the challenge and the progress without it
  }
}

function forgetStill() {
  preview.removeAttribute('poster');
  page.still = false;
}

function releaseCamera() {
  media.stopStream(page.stream);
  page.stream = null;
  preview.srcObject = null;
  cameraChoice.parentElement.hidden = true;
}

// -- the fallback: the phone's own camera app -------------------------------------------------

function useFallback(reason) {
  milestone('fallback', reason);
  stopCapture();
  page.fallbackReason = reason;
  explain(reason);
  setPhase('fallback');
  focusOn(challengeTitle);  // the challenge to remember, then how to record it
  fileInput.disabled = !page.challenge;
  if (!page.challenge) say(t('preparing'));
  else if (page.chosenFile) sendChosenFile();
  else if (reason === 'chosen') say(t('useCameraApp'));
  else say(t(`why_${reason}`), reason === 'microphone' && page.state.action_fallback ? t('orActions') : '');
}

// How to record in the page next time, by what went wrong.
const FIXES = {
  denied: ['fix_ios', 'fix_android', 'fix_wechat', 'fix_desktop'],
  insecure: ['fix_https'],
  unsupported: ['fix_browser_ios', 'fix_browser_android', 'fix_browser_wechat', 'fix_browser_desktop'],
  inapp: ['fix_inapp', 'fix_browser_ios', 'fix_browser_android'],
  recorder: ['fix_browser_ios', 'fix_browser_android', 'fix_browser_wechat', 'fix_browser_desktop'],
  slow: ['fix_slow'],
  busy: ['fix_busy'],
  microphone: ['fix_mic_ios', 'fix_mic_android', 'fix_mic_wechat', 'fix_mic_desktop'],
  missing: ['fix_missing'],
};

/** The person's system, for the advice that is theirs: 'wechat', 'ios', 'android' or 'desktop'. */
function platform() {
  const agent = navigator.userAgent;
  if (/MicroMessenger/i.test(agent)) return 'wechat';
  if (/iPhone|iPad|iPod/.test(agent) || (navigator.platform === 'MacIntel' && navigator.maxTouchPoints > 1)) return 'ios';
  if (navigator.userAgentData?.platform === 'Android' || /Android/.test(agent)) return 'android';
  return 'desktop';
}

function listItems(keys) {
  return keys.map((key) => Object.assign(document.createElement('li'), { textContent: t(key) }));
}

/** How to make the camera work here next time: the person's own system's way (a phone's, or a
 * computer's), with the others folded under 其他系统; every way where none is theirs. */
function explain(reason) {
  const ways = FIXES[reason] ?? [];
  const own = ways.filter((key) => key.endsWith(`_${platform()}`));
  const mine = own.length ? own : ways;
  const others = own.length ? ways.filter((key) => !own.includes(key)) : [];
  why.hidden = ways.length === 0;
  fixes.replaceChildren(...listItems(mine));
  otherFixList.replaceChildren(...listItems(others));
  otherFixes.hidden = others.length === 0;
  otherFixes.open = false;
  cameraAgainButton.hidden = !['denied', 'busy', 'missing', 'slow', 'microphone'].includes(reason);
}

function onFileChosen() {
  const file = fileInput.files?.[0];
  fileInput.value = '';  // choosing the same file again still fires `change`
  // 'start' too: on a first visit the page may still be asking for the challenge.
  if (!file || !['fallback', 'start'].includes(page.phase)) return;
  page.chosenFile = file;
  if (page.challenge) sendChosenFile();  // else it goes as soon as the challenge has arrived
}

function sendChosenFile() {
  const file = page.chosenFile;
  page.chosenFile = null;
  page.recorded = null;
  say(t('fileChosen'));
  send({ file, name: file.name || 'video', challengeId: page.challenge.id });
}

function tryCameraAgain() {
  page.fallbackReason = null;
  why.hidden = true;
  if (page.challenge) openCamera();
  else newAttempt();
}

// -- upload and verdict -------------------------------------------------------------------------

/** Upload a recording (kept in page.upload until it has an answer, to send again if lost). */
async function send(next) {
  page.upload = { ...next, consent: page.agreed ? `${consentVersion} ${consentLanguage}` : null };
  milestone('upload_sent');
  setPhase('uploading');
  progress.value = 0;
  say(t('uploading'));
  focusOn(resultTitle);  // the start button that had the focus is gone
  let answer;
  try {
    answer = await net.uploadVideo(base, page.upload, {
      onProgress: (fraction) => { progress.value = fraction; },
      onSent: () => {
        if (page.phase !== 'uploading') return;
        setPhase('verifying');
        say(t('verifying'));
      },
    });
  } catch {
    return recoverLostUpload();
  }
  if (answer.status === 503) return recoverLostUpload(answer.body?.error ?? {});  // the service is recovering
  if (answer.status >= 500 || answer.body === null) return recoverLostUpload();
  if (answer.status === 202 && answer.body.state) {  // queued for a worker: follow the state
    page.state = answer.body.state;
    return waitForVerdict();
  }
  page.upload = null;
  if (answer.ok && answer.body.outcome) {
    page.state = answer.body.state;
    milestone('verdict', answer.body.outcome.result);
    return showVerdict(answer.body.outcome);
  }
  return handleRefusal(answer);
}

/**
 * Draw the verdict of an attempt, beside page.state (the session as the server sent it with
 * the verdict, the truth about whether it is over). `verdict` is the upload's `outcome`, or the
 * state's `last` (a worker had the video, the upload's answer was lost, or the page was
 * reloaded): both have one shape, {result, message, message_en, problem, problem_en, category,
 * final, retry, attempts_left, challenge_id, recording_broken}; a `last` from an older server
 * lacks retry, attempts_left and recording_broken, which the state's status and attempts_left
 * stand for. null: the session ended with no attempt to speak of.
 */
function showVerdict(verdict) {
  // The server could not read what this recorder made: the next recording uses another type.
  if (verdict?.recording_broken && page.recorded !== null) {
    page.brokenTypes.add(page.recorded);
    page.brokenRecordings += 1;
  }
  page.recorded = null;
  const { status } = page.state;
  if (status === STATUS.PASSED || verdict?.result === RESULT.PASSED) return finish(STATUS.PASSED, t('passed'));
  if (status === STATUS.EXPIRED) return finish(STATUS.EXPIRED, t('expired'));  // whatever the last attempt said
  if (status !== STATUS.PENDING || verdict?.retry === false) return finish(STATUS.FAILED, ...endWords(verdict));
  return offerRetry(pick(verdict?.message, verdict?.message_en), verdict?.result === RESULT.REJECTED ? t('notCounted') : '');
}

/** The server said no (a 4xx with {error, state}): draw what it says. */
function handleRefusal(answer) {
  const error = answer.body?.error;
  if (answer.body?.state) page.state = answer.body.state;
  if (answer.status === 404) return notFound();
  if (answer.status === 410 || error?.code === 'session_expired') return linkExpired();
  if (error?.code === 'in_flight') return waitForVerdict();
  if (page.state.status !== STATUS.PENDING) return showState(page.state);
  if (!error) return offerRetry(t('server'));
  return offerRetry(pick(error.message_zh, error.message));
}

/** The link expired while the page was open (a 410). The state that came with it may be from
 * before the expiry (still "pending", attempts left): read it again, for where to go back to. */
async function linkExpired() {
  try {
    const fresh = await net.fetchState(base);
    if (fresh.ok) page.state = fresh.body;
  } catch {
    // offline: the words say what to do even without a 返回 link
  }
  return finish(STATUS.EXPIRED, t('expired'));
}

/** The upload got no answer, or the service was recovering (`outage`: its 503 error, words for
 * the person): did the server get it? Ask for the state (again while the service recovers). */
async function recoverLostUpload(outage = null) {
  if (outage) say(pick(outage.message_zh, outage.message) || t('outage'));
  for (let tries = 1; ; tries += 1) {
    let answer;
    try {
      answer = await net.fetchState(base);
    } catch {
      return offerResend(outage);
    }
    if (answer.status === 404) return notFound();
    if (answer.status === 503 && tries < RECOVERY.tries) {
      await sleep(RECOVERY.everyMs);
      continue;
    }
    if (!answer.ok) return offerResend(outage);
    page.state = answer.body;
    if (inFlight(page.state)) return waitForVerdict();
    if (page.state.challenge && page.state.challenge.id === page.upload?.challengeId) return offerResend(outage);
    return settle(page.state, outage);
  }
}

function offerResend(outage = null) {
  setPhase('resend');
  say(t(outage ? 'outage' : 'lost'));
  focusOn(resendButton);
}

function sendAgain() {
  if (page.upload) send(page.upload);
}

/** A video is being verified (here, or before a reload): ask, pausing if answered early, until done. */
async function waitForVerdict() {
  setPhase('verifying');
  say(t('verifying'));
  for (let delay = POLL_MS.first; ; delay = Math.min(delay * 1.5, POLL_MS.max)) {
    const asked = Date.now();
    let answer = null;
    try {
      answer = await net.fetchState(base, STATE_WAIT_S);
    } catch {
      // still offline: keep asking
    }
    if (answer?.status === 404) return notFound();
    if (answer?.ok && !inFlight(answer.body)) return settle(answer.body);
    await sleep(Math.max(0, delay - (Date.now() - asked)));
  }
}

/** Draw the verdict read from the state: a worker had the video, or the upload's own answer was
 * lost, or was a 503 whose `outage` words say why nothing came of it. */
function settle(next, outage = null) {
  page.state = next;
  const last = resultOfUpload(next);
  // This page's video has its verdict (the operator's funnel); where the state has none for it, the session's end says it.
  if (page.upload) milestone('verdict', last?.result ?? ([STATUS.PASSED, STATUS.FAILED].includes(next.status) ? next.status : RESULT.RETRY));
  page.upload = null;
  if (last || next.status !== STATUS.PENDING) return showVerdict(last ?? next.last);
  return offerRetry(outage ? pick(outage.message_zh, outage.message) || t('server') : t('noResult'));
}

/** The state's `last`, if it is the result of the upload this page sent (else null). */
function resultOfUpload(s) {
  if (!page.upload) return s.last;
  return s.last?.challenge_id === page.upload.challengeId ? s.last : null;
}

// -- outcomes -----------------------------------------------------------------------------------

function offerRetry(message, note = '') {
  stopCapture();
  setPhase('retry');
  const n = page.state.attempts_left;
  const left = n > 0 ? t(n === 1 ? 'attemptLeft' : 'attemptsLeft', { n }) : '';  // "1 attempt left", "2 attempts left"
  say(message, note, left);
  focusOn(retryButton);
}

function finish(status, ...words) {
  stopCapture();
  setPhase(status === STATUS.PASSED ? 'passed' : 'over');
  const url = safeUrl(page.state.return_url);
  // Standalone, a name and number that do not match (or are not registered) can be corrected.
  editLink.hidden = !(root.dataset.form && status === STATUS.FAILED && page.state.last?.category === 'identity');
  say(...words, nextStep(status, url));
  tellParent(status);
  if (url) offerReturn(url, status === STATUS.PASSED);
  focusOn(document.querySelector('.controls a:not([hidden])') ?? resultTitle);
}

/** What the person does after a final screen. Framed, the operator's page takes over: it, not
 * this frame, can be closed. */
function nextStep(status, url) {
  if (status === STATUS.PASSED) return url || framed ? '' : t('closeNow');
  if (status === STATUS.EXPIRED) {
    if (url) return t('expiredBack');
    // A page opened on an expired link lists the steps itself (capture.html).
    return document.getElementById('expired-title') ? '' : t('expiredNext');
  }
  return url ? t('tapReturn') : '';
}

function notFound() {
  stopCapture();
  setPhase('over');
  say(t('notFound'));
  focusOn(resultTitle);
}

/** Framed by an allowed site: tell it the result (never to `*`). */
function tellParent(status) {
  const origin = page.state.message_origin;
  if (page.toldParent || !origin || !framed) return;
  window.parent.postMessage({ type: 'liveness:result', sessionId: page.state.session_id, status }, origin);
  page.toldParent = true;
}

/** Framed, tell the parent the page's height whenever it changes, so that embed.js sizes the
 * frame to it and the page never scrolls inside the frame. */
function tellParentTheHeight() {
  const origin = page.state.message_origin;
  if (!origin || !framed || typeof ResizeObserver !== 'function') return;
  let last = 0;
  new ResizeObserver(() => {
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height === last) return;
    last = height;
    window.parent.postMessage({ type: 'liveness:resize', height }, origin);
  }).observe(document.documentElement);
}

/** Where the session has a return_url, a 返回 link leads there. A final failure stays until the
 * person taps it (its words may need reading); a pass goes on by itself after a visible countdown. */
function offerReturn(url, goOnItsOwn) {
  returnLink.href = url;
  returnLink.hidden = false;
  clearTimeout(page.returnTimer);
  countdown.hidden = !goOnItsOwn;
  if (!goOnItsOwn) return;
  let left = PASS_RETURN_S;
  const tick = () => {
    if (left <= 0) {
      window.location.assign(url);
      return;
    }
    countdown.textContent = t('returningIn', { n: left });
    left -= 1;
    page.returnTimer = setTimeout(tick, 1000);
  };
  tick();
}

function safeUrl(value) {
  try {
    const url = new URL(value);
    return ['https:', 'http:'].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

// -- the page's life ----------------------------------------------------------------------------

function onVisibilityChange() {
  if (document.visibilityState === 'hidden' && CAPTURING.includes(page.phase)) {
    page.hidden = true;
    stopCapture();
    setPhase('paused');
    say(t('paused'));
  } else if (document.visibilityState === 'visible' && page.phase === 'paused') {
    openCamera();
  }
}

/** The first screen (challenge, preview, start button) fills the viewport below the header:
 * app.css sizes it from --top, where the page's own part begins. */
function measureTop() {
  const top = document.querySelector('.top').getBoundingClientRect().bottom + window.scrollY;
  document.documentElement.style.setProperty('--top', `${Math.round(top)}px`);
}

function init() {
  document.documentElement.classList.toggle('framed', framed);
  try {  // once: any other reload asks for consent again before the camera
    page.agreed = window.sessionStorage.getItem(AGREED_KEY) === '1';
    window.sessionStorage.removeItem(AGREED_KEY);
  } catch {
    // storage refused: the consent screen comes first, as on a first visit
  }
  measureTop();
  window.addEventListener('resize', measureTop);
  tellParentTheHeight();
  milestone('opened');
  document.getElementById('agree').addEventListener('click', agree);
  document.getElementById('decline').addEventListener('click', decline);
  // Disabled in the HTML until now: a tap before the script is ready would do nothing.
  document.getElementById('agree').disabled = false;
  document.getElementById('decline').disabled = false;
  document.getElementById('reconsider').addEventListener('click', reconsider);
  cameraChoice.addEventListener('change', () => switchCamera(cameraChoice.value));
  redoButton.addEventListener('click', recordAgainLocally);
  sendAnywayButton.addEventListener('click', sendAnyway);
  startButton.addEventListener('click', startRecording);
  retryButton.addEventListener('click', () => whenAgreed(newAttempt));
  resendButton.addEventListener('click', sendAgain);
  fileInput.addEventListener('change', onFileChosen);
  useFileButton.addEventListener('click', () => useFallback('chosen'));
  cameraAgainButton.addEventListener('click', tryCameraAgain);
  switchButton.addEventListener('click', switchToAction);
  document.addEventListener('visibilitychange', onVisibilityChange);
  window.addEventListener('pagehide', stopCapture);
  window.addEventListener('pageshow', (event) => {
    if (event.persisted && CAPTURING.includes(page.phase)) openCamera();  // back from the page cache
  });
  firstDraw();
}

loaded.catch(() => {}).then(init);  // the sentences first (a failure leaves their keys)
