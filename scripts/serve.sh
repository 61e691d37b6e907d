#!/usr/bin/env bash
# Install what is needed, then serve the app with gunicorn (sandbox mode unless JUHE_KEY is set).
#   bash scripts/serve.sh           http://127.0.0.1:8000/ (localhost is a secure context)
#   bash scripts/serve.sh --https   https://<this machine's LAN address>:8443/ with a self-signed
#                                   certificate, so a phone on the same network can use its camera
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = --https ]; then
  ips=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -v ':' | grep . || echo 127.0.0.1)
  mkdir -p instance
  if [ ! -f instance/tls-cert.pem ]; then
    san="DNS:localhost$(printf ',IP:%s' $ips)"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=liveness-dev" \
      -addext "subjectAltName=$san" -keyout instance/tls-key.pem -out instance/tls-cert.pem 2>/dev/null
  fi
  export BIND=${BIND:-0.0.0.0:8443} TLS_CERTFILE=instance/tls-cert.pem TLS_KEYFILE=instance/tls-key.pem
  port=${BIND##*:}
  for ip in $ips; do
    echo "Open on a phone on the same network: https://$ip:$port/ (accept the certificate warning once)"
  done
else
  export BIND=${BIND:-127.0.0.1:8000}
  echo "Open http://${BIND}/"
fi
exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
