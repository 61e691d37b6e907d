"""Render deploy/nginx.conf for scripts/serve.sh, and say which PROXY_HOPS gunicorn gets.

    python deploy/nginx_conf.py --listen 127.0.0.1:8000 --upstream unix:/…/gunicorn.sock \
        --run /…/instance/run [--cert cert.pem --key key.pem] > /…/instance/run/nginx.conf

Prints nothing else; `--proxy-hops` instead prints the PROXY_HOPS gunicorn must get: the caller's
(environment or `.env`), else 1, the nginx in front. Settings come from the app's own reader
(webapp/settings.py), so `.env` counts; if they do not load, defaults are used here and gunicorn
reports the bad value when it starts.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("nginx.conf")
DEFAULT_UPLOAD_MB = 50
DEFAULT_GUNICORN_TIMEOUT = 180
WORKER_CONNECTIONS = 4096   # per nginx worker (one per CPU)


def _settings():
    sys.path.insert(0, str(ROOT))
    try:
        from webapp.settings import Settings
        return Settings()
    except Exception:  # noqa: BLE001 - gunicorn will name the bad variable
        return None


def proxy_hops() -> int:
    settings = _settings()
    if settings is not None and "PROXY_HOPS" in settings.model_fields_set:
        return settings.PROXY_HOPS
    return 1


def file_limits(connections: int = WORKER_CONNECTIONS) -> tuple[int, int]:
    """nginx's (worker_connections, worker_rlimit_nofile): two descriptors per connection. Root's
    workers may raise their own limit; another user's only up to the hard limit, so fewer
    connections there rather than workers that cannot open what they accept."""
    nofile = 2 * connections
    if os.geteuid() != 0:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < nofile:
            nofile = hard
    return max(nofile // 2, 64), nofile


def proxy_addresses(settings) -> list[str]:
    """PROXY_ADDRESSES, each an address or network nginx accepts (checked again: this is config)."""
    if settings is None:
        return []
    found = []
    for item in getattr(settings, "PROXY_ADDRESSES", ()):
        found.append(str(ipaddress.ip_network(item, strict=False)))
    return found


def real_ip(addresses: list[str]) -> str:
    """The realip directives: count the client in X-Forwarded-For when the connection is from one
    of `addresses` (the rightmost address not of them; a client cannot choose it)."""
    if not addresses:
        return "# (PROXY_ADDRESSES unset: every connection counts as its own address)"
    lines = [f"set_real_ip_from {a};" for a in addresses]
    lines += ["real_ip_header X-Forwarded-For;", "real_ip_recursive on;"]
    return "\n    ".join(lines)


def listen_directive(bind: str, tls: bool) -> str:
    """gunicorn's BIND (host:port, [v6]:port, :port, port, unix:/path) as nginx's `listen`."""
    address = bind[1:] if bind.startswith(":") else bind
    return f'"{address}"' + (" ssl" if tls else "")


def render(listen: str, upstream: str, run: str, cert: str | None = None,
           key: str | None = None) -> str:
    settings = _settings()
    upload_mb = settings.MAX_UPLOAD_MB if settings is not None else \
        int(os.environ.get("MAX_UPLOAD_MB") or DEFAULT_UPLOAD_MB)
    gunicorn_timeout = int(os.environ.get("GUNICORN_TIMEOUT") or DEFAULT_GUNICORN_TIMEOUT)
    tls = ""
    if cert:
        tls = (f'ssl_certificate "{cert}";\n        ssl_certificate_key "{key}";\n'
               "        ssl_protocols TLSv1.2 TLSv1.3;")
    user = ""
    if os.geteuid() == 0:
        # As root, nginx would run its workers as nobody, who cannot reach the instance folder.
        import grp
        import pwd
        user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(0).gr_name};"
    worker_connections, rlimit_nofile = file_limits()
    fields = {
        "RUN": run,
        "WORKER_CONNECTIONS": str(worker_connections),
        "RLIMIT_NOFILE": str(rlimit_nofile),
        "REAL_IP": real_ip(proxy_addresses(settings)),
        "USER": user,
        "BODY_MB": str(upload_mb + 1),
        "UPSTREAM": upstream,
        "LISTEN": listen_directive(listen, bool(cert)),
        "TLS": tls,
        "READ_TIMEOUT": str(gunicorn_timeout + 30),
    }
    text = TEMPLATE.read_text()
    for name, value in fields.items():
        text = text.replace(f"@{name}@", value)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy-hops", action="store_true")
    parser.add_argument("--listen")
    parser.add_argument("--upstream")
    parser.add_argument("--run")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args(argv)
    if args.proxy_hops:
        print(proxy_hops())
        return 0
    if not (args.listen and args.upstream and args.run):
        parser.error("--listen, --upstream and --run are needed")
    sys.stdout.write(render(args.listen, args.upstream, args.run, args.cert, args.key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
