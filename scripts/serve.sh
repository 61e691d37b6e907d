#!/usr/bin/env bash
# Install what is needed, then serve the app: nginx on BIND in front of gunicorn (sandbox mode
# unless JUHE_KEY is set).
#   bash scripts/serve.sh           http://127.0.0.1:8000/ (localhost is a secure context)
#   bash scripts/serve.sh --https   https://<this machine's LAN address>:8443/ with a self-signed
#                                   certificate, so a phone on the same network can use its camera
#
# nginx (deploy/nginx.conf) reads every request body whole before gunicorn sees it, so slow
# uploads cannot hold gunicorn's threads; it terminates TLS with --https. gunicorn
# (gunicorn -c gunicorn.conf.py wsgi:app) listens on a unix socket in the instance folder and
# trusts one proxy hop (PROXY_HOPS=1 unless set). Both run as the invoking user; nginx's pid,
# temp files and rendered config are in <instance>/run, its errors go to stderr. If either
# process ends, the other is stopped and this script exits with the status of the one that
# ended; Ctrl-C or SIGTERM stops both (gunicorn first, gracefully).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

instance=$(realpath -m "${INSTANCE_PATH:-instance}")
export INSTANCE_PATH=$instance
run=$instance/run
mkdir -p "$run"
chmod 700 "$run"

# BIND from the environment, else from .env (the app reads its other settings from .env itself).
if [ -z "${BIND:-}" ] && [ -f .env ]; then
  BIND=$(sed -n 's/^BIND=//p' .env | tail -n 1)
fi
cert=
if [ "${1:-}" = --https ]; then
  BIND=${BIND:-0.0.0.0:8443}
  host=${BIND%:*} port=${BIND##*:}
  case $host in
    0.0.0.0|'*'|'') ips=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -v ':' | grep . || echo 127.0.0.1) ;;
    *) ips=$host ;;   # bound to one address: only that one is reachable
  esac
  cert=$instance/tls-cert.pem key=$instance/tls-key.pem
  want_san="DNS:localhost$(printf ',IP:%s' $ips)"
  # A new certificate when there is none, when it expires within a day, or when it does not
  # name every address it is served on (the machine moved to another network).
  have_san=$(openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ' \
             | sed 's/IPAddress:/IP:/g' || true)
  if [ ! -f "$key" ] || ! openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null 2>&1 \
      || [ "$have_san" != "$want_san" ]; then
    echo "making a self-signed certificate for $want_san (30 days)"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=liveness-dev" \
      -addext "subjectAltName=$want_san" -keyout "$key" -out "$cert" 2>/dev/null
    chmod 600 "$key"
  fi
  for ip in $ips; do
    case $ip in
      127.*) echo "Open https://$ip:$port/ on this machine (bound to loopback: a phone cannot reach it; BIND=0.0.0.0:$port for the LAN)" ;;
      *) echo "Open on a phone on the same network: https://$ip:$port/ (accept the certificate warning once)" ;;
    esac
  done
else
  BIND=${BIND:-127.0.0.1:8000}
  echo "Open http://${BIND}/"
fi

# gunicorn's private socket (a unix socket path must stay under ~100 bytes).
sock=$run/gunicorn.sock
if [ ${#sock} -gt 100 ]; then
  sockdir=$(mktemp -d "${TMPDIR:-/tmp}/liveness.XXXXXX")
  sock=$sockdir/gunicorn.sock
fi
rm -f "$sock"
trap '[ -z "${sockdir:-}" ] || rm -rf "$sockdir"' EXIT

nginx=${NGINX:-$(PATH=$PATH:/usr/sbin:/sbin command -v nginx || true)}
[ -n "$nginx" ] || { echo "serve.sh: nginx not found (bash scripts/setup.sh installs it)" >&2; exit 1; }
.venv/bin/python deploy/nginx_conf.py --listen "$BIND" --upstream "unix:$sock" --run "$run" \
  ${cert:+--cert "$cert" --key "$key"} > "$run/nginx.conf"
proxy_hops=$(.venv/bin/python deploy/nginx_conf.py --proxy-hops)
"$nginx" -t -q -p "$run" -c "$run/nginx.conf" -e stderr

stopping=
gunicorn_pid= nginx_pid=
on_signal() {
  if [ -z "$stopping" ]; then
    stopping=1
    kill -TERM "$gunicorn_pid" 2>/dev/null || true       # graceful: finish the requests in hand
  else
    kill -INT "$gunicorn_pid" 2>/dev/null || true        # a second Ctrl-C: now
  fi
}
trap on_signal INT TERM

BIND="unix:$sock" PROXY_HOPS=$proxy_hops TLS_CERTFILE= TLS_KEYFILE= \
  .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app &
gunicorn_pid=$!

# Start nginx once gunicorn listens (or stop here if gunicorn could not start).
for _ in $(seq 600); do
  [ -S "$sock" ] || [ -n "$stopping" ] || ! kill -0 "$gunicorn_pid" 2>/dev/null && break
  sleep 0.1
done
if [ -n "$stopping" ] || ! kill -0 "$gunicorn_pid" 2>/dev/null; then
  status=0
  wait "$gunicorn_pid" || status=$?
  exit "$status"
fi
# nginx's error lines quote the request line, and a page URL carries a credential (/v/<token>):
# its stderr passes through the same redaction as the app's logs (webapp/logs.py).
redact() { sed -u -E 's#(/v/)[A-Za-z0-9_-]{16,}#\1***#g'; }
"$nginx" -p "$run" -c "$run/nginx.conf" -e stderr -g 'daemon off;' 2> >(redact >&2) &
nginx_pid=$!

status=0
wait -n "$gunicorn_pid" "$nginx_pid" || status=$?
while [ -z "$stopping" ] && kill -0 "$gunicorn_pid" 2>/dev/null && kill -0 "$nginx_pid" 2>/dev/null; do
  wait -n "$gunicorn_pid" "$nginx_pid" || status=$?   # woken by a signal already handled: wait on
done
if [ -n "$stopping" ]; then
  # Asked to stop: gunicorn first (nginx relays its last answers), then nginx.
  status=0
  while kill -0 "$gunicorn_pid" 2>/dev/null; do wait "$gunicorn_pid" || status=$?; done
  wait "$gunicorn_pid" 2>/dev/null || true
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  exit "$status"
fi
if ! kill -0 "$gunicorn_pid" 2>/dev/null; then
  echo "serve.sh: gunicorn exited (status $status); stopping nginx" >&2
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
else
  echo "serve.sh: nginx exited (status $status); stopping gunicorn" >&2
  kill -TERM "$gunicorn_pid" 2>/dev/null || true
  wait "$gunicorn_pid" 2>/dev/null || true
fi
exit "$status"
