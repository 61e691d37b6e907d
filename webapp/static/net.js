// The page's conversation with the server: its state, a new challenge, one upload.
// The token in the page's URL is the only credential; no cookie is needed (the page may be
// framed cross-site, where third-party cookies are blocked).

const UPLOAD_TIMEOUT_MS = 180_000;  // longer than ffmpeg plus Juhe's read timeout
const CALL_TIMEOUT_MS = 20_000;  // any other request, beyond what the server may hold it

/** An answer the server gave: `status` and its JSON body (null when it was not JSON). */
export class Answer {
  constructor(status, body) {
    this.status = status;
    this.body = body;
  }

  get ok() {
    return this.status >= 200 && this.status < 300 && this.body !== null;
  }
}

/** The request never got an answer (offline, connection dropped, timed out). */
export class ConnectionLost extends Error {}

async function call(url, options, heldMs = 0) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), CALL_TIMEOUT_MS + heldMs);
  try {
    let response;
    try {
      response = await fetch(url, { cache: 'no-store', credentials: 'omit', signal: abort.signal, ...options });
    } catch (error) {
      throw new ConnectionLost(error.message);
    }
    const body = await response.json().catch(() => null);
    return new Answer(response.status, body);
  } finally {
    clearTimeout(timer);
  }
}

/** GET the session's state; a server that can may hold it up to `waitSeconds` for the verdict. */
export function fetchState(base, waitSeconds = 0) {
  const query = waitSeconds > 0 ? `?wait=${waitSeconds}` : '';
  return call(`${base}/state${query}`, { headers: { Accept: 'application/json' } }, waitSeconds * 1000);
}

/** POST for a new challenge: 201 {challenge, state}, or {error, state}. */
export function requestChallenge(base) {
  return call(`${base}/challenge`, { method: 'POST', headers: { Accept: 'application/json' } });
}

/** POST to record a number-mode session in action mode instead (the microphone failed, for
 * `reason`): 201 {challenge, state}, or {error, state}. */
export function switchToAction(base, reason) {
  return call(`${base}/mode`, {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify({ mode: 'action', reason }),
  });
}

/**
 * Upload one video with XMLHttpRequest (fetch cannot report upload progress).
 * `onProgress(fraction)` follows the bytes sent; `onSent()` fires once they all left.
 * Resolves with an Answer; rejects with ConnectionLost when no answer came.
 */
export function uploadVideo(base, { file, name, challengeId, checks, signals, consent }, { onProgress, onSent }) {
  const form = new FormData();
  form.append('challenge', challengeId);
  if (checks) form.append('checks', JSON.stringify(checks));  // the page's own check (performance.js)
  if (signals?.length) form.append('signals', JSON.stringify(signals));  // risk_signals.py
  if (consent) form.append('consent', consent);  // the consent text's version and language, shown
  form.append('video', file, name);
  const xhr = new XMLHttpRequest();
  return new Promise((resolve, reject) => {
    xhr.open('POST', `${base}/upload`);
    xhr.timeout = UPLOAD_TIMEOUT_MS;
    xhr.responseType = 'text';
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    xhr.upload.onload = () => onSent();
    xhr.onload = () => resolve(new Answer(xhr.status, parseJson(xhr.responseText)));
    xhr.onerror = () => reject(new ConnectionLost('network error'));
    xhr.ontimeout = () => reject(new ConnectionLost('timeout'));
    xhr.onabort = () => reject(new ConnectionLost('aborted'));
    xhr.send(form);
  });
}

/** Tell the server one of the page's milestones (page_events.py): `{name, detail?}`. Never
 * waited for and never in the way: sendBeacon where there is one (it outlives the page), else a
 * fetch kept alive; a report that is lost is lost. */
export function reportEvent(base, event) {
  const body = JSON.stringify(event);  // a string: sent as text/plain, no preflight
  try {
    if (navigator.sendBeacon?.(`${base}/events`, body)) return;
  } catch {
    // refused (too large, a strict policy): try fetch
  }
  try {
    fetch(`${base}/events`, {
      method: 'POST', body, keepalive: true, credentials: 'omit', headers: { 'Content-Type': 'text/plain' },
    }).catch(() => {});
  } catch {
    // no way to tell: the funnel counts a step reached when a later one was
  }
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
