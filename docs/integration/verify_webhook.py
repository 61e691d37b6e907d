"""Check a webhook's X-Signature (Python 3, standard library only).

    WEBHOOK_SECRET=… python3 verify_webhook.py "$X_SIGNATURE" < body.json   # exit 0 valid, 1 not

The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; during a secret
rotation it carries two `v1=`, so accept any that matches. Use the raw body bytes as received
(not re-serialised JSON), compare in constant time, refuse timestamps over 5 minutes off.
"""
import hashlib
import hmac
import os
import sys
import time

TOLERANCE = 300  # seconds


def valid(secret: str, body: bytes, header: str, now: float | None = None) -> bool:
    pairs = [part.strip().partition("=")[::2] for part in header.split(",")]
    stamps = [value for key, value in pairs if key == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamps[0])) > TOLERANCE:
        return False
    expected = hmac.new(secret.encode(), stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any([hmac.compare_digest(expected, value) for key, value in pairs if key == "v1"])


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.environ.get("WEBHOOK_SECRET"):
        sys.exit("usage: WEBHOOK_SECRET=… verify_webhook.py '<X-Signature>' < body")
    ok = valid(os.environ["WEBHOOK_SECRET"], sys.stdin.buffer.read(), sys.argv[1])
    print("valid" if ok else "invalid")
    sys.exit(0 if ok else 1)
