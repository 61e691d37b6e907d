"""A minimal operator integration: your backend creates the session, your page frames it with
embed.js, and your backend reads the trusted result (API or webhook). Run beside the service:

    LIVENESS_URL=http://localhost:8000 LIVENESS_KEY=sandbox-operator-key \
    WEBHOOK_SECRET=... .venv/bin/flask --app docs/operator-example/bank_demo.py run --port 5001

and start the service with EMBED_ORIGINS=http://127.0.0.1:5001 (and the same WEBHOOK_SECRET).
Open http://127.0.0.1:5001/ (another site than localhost:8000, as in production).

Its settings, from the environment: LIVENESS_URL (the service), LIVENESS_KEY (an operator key
of OPERATOR_API_KEYS), WEBHOOK_SECRET (the service's, to check signatures), MY_ORIGIN (where
this demo is served: the port given to `run` and the service's EMBED_ORIGINS must agree).
(It is not named operator.py: that would shadow Python's own `operator` module.)

Also shown: a video recorded in your own app (POST /native/start, then /native/<id>/video with
the file or a `video_url`), and best frames fetched within BEST_FRAMES_RETENTION
(/frames/<id>). The service's own console, for people, is at LIVENESS_URL/console.
"""
import hashlib
import hmac
import os
import time

import requests
from flask import Flask, abort, jsonify, render_template_string, request

LIVENESS_URL = os.environ.get("LIVENESS_URL", "http://localhost:8000")
LIVENESS_KEY = os.environ.get("LIVENESS_KEY", "sandbox-operator-key")   # keep it server-side
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET", "")
MY_ORIGIN = os.environ.get("MY_ORIGIN", "http://127.0.0.1:5001")

app = Flask(__name__)
api = requests.Session()
api.headers["Authorization"] = f"Bearer {LIVENESS_KEY}"

PAGE = """<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Verify your identity</title>
<div id="liveness"></div>
<p id="result"></p>
<script src="{{ liveness }}/static/embed.js"></script>
<script>
LivenessEmbed.open(document.getElementById('liveness'), {{ url|tojson }}).then(async ({ sessionId }) => {
  // The message is only a cue: the result comes from our own backend.
  const r = await fetch('/result/' + encodeURIComponent(sessionId));
  document.getElementById('result').textContent = 'Result: ' + (await r.json()).status;
});
</script>"""


@app.get("/")
def start():
    """In a real system the identity comes from your own records, never from this page."""
    body = {"realname": "张三", "idcard": "110101199003071006", "mode": "number",
            "reference": "demo-order-1", "embed_origin": MY_ORIGIN, "best_frames": 1}
    if WEBHOOK_SECRET:
        body["callback_url"] = f"{MY_ORIGIN}/hooks/liveness"
    created = api.post(f"{LIVENESS_URL}/api/v1/sessions", json=body, timeout=10)
    created.raise_for_status()
    return render_template_string(PAGE, liveness=LIVENESS_URL, url=created.json()["url"])


@app.get("/result/<session_id>")
def result(session_id):
    """Read the trusted result from the service (the browser's word is never taken)."""
    answer = api.get(f"{LIVENESS_URL}/api/v1/sessions/{session_id}", timeout=10)
    if answer.status_code == 404:
        abort(404)
    session = answer.json()
    return jsonify({"status": session["status"], "score": session["score"]})


@app.post("/hooks/liveness")
def webhook():
    """Check the signature, de-duplicate on X-Event-Id, store, answer 2xx quickly."""
    body = request.get_data()
    # t=<unix seconds>,v1=<hex>[,v1=<hex>]: during a secret rotation there are two v1, one each.
    pairs = [p.split("=", 1) for p in request.headers.get("X-Signature", "").split(",") if "=" in p]
    stamps = [v for k, v in pairs if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(time.time() - int(stamps[0])) > 300:
        abort(400)
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{stamps[0]}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(mac, v) for k, v in pairs if k == "v1"):
        abort(400)
    event_id = request.headers["X-Event-Id"]
    app.logger.info("liveness event %s: session %s is %s", event_id, request.json["id"], request.json["status"])
    return "", 204


# -- a video recorded in your own app (no page): challenge first, then the file or its URL ----------
@app.post("/native/start")
def native_start():
    """Your app asks for a session and the challenge to show (digits to read, or two actions)."""
    body = {"realname": "张三", "idcard": "110101199003071006", "mode": "number", "reference": "app-1",
            "best_frames": 1}
    created = api.post(f"{LIVENESS_URL}/api/v1/sessions", json=body, timeout=10)
    created.raise_for_status()
    session_id = created.json()["id"]
    drawn = api.post(f"{LIVENESS_URL}/api/v1/sessions/{session_id}/challenge", timeout=10)
    drawn.raise_for_status()
    return jsonify({"session_id": session_id, "challenge": drawn.json()["challenge"]})


@app.post("/native/<session_id>/video")
def native_video(session_id):
    """Your app uploads the recording here (or gives a URL where you stored it); we pass it on.
    The answer's `message` is what to show the person; the trusted result is the `session`."""
    challenge = request.form.get("challenge") or (request.json or {}).get("challenge")
    if "video" in request.files:
        file = request.files["video"]
        answer = api.post(f"{LIVENESS_URL}/api/v1/sessions/{session_id}/video", timeout=90,
                          data={"challenge": challenge}, files={"video": (file.filename, file.stream)})
    else:
        answer = api.post(f"{LIVENESS_URL}/api/v1/sessions/{session_id}/video", timeout=90,
                          json={"challenge": challenge, "video_url": request.json["video_url"]})
    if answer.status_code != 200:
        return jsonify(answer.json()), answer.status_code
    outcome = answer.json()["outcome"]
    return jsonify({"result": outcome["result"], "message": outcome["message"],
                    "status": answer.json()["session"]["status"]})


@app.get("/frames/<session_id>")
def frames(session_id):
    """Fetch the best frames (base64 JPEGs) while they are kept; store them in your own system
    under your own retention rule. 410: past BEST_FRAMES_RETENTION, gone for good."""
    answer = api.get(f"{LIVENESS_URL}/api/v1/sessions/{session_id}/best-frames", timeout=10)
    if answer.status_code != 200:
        return jsonify(answer.json()), answer.status_code
    kept = answer.json()
    return jsonify({"frames": len(kept["frames"]), "expires_at": kept["expires_at"]})
