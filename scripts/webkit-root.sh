#!/usr/bin/env bash
# Build, once, the Debian 13 (trixie) root in which the browser tests run WebKitGTK's MiniBrowser
# under WebKitWebDriver (tests/browser/engines/webkit.py), and reuse it afterwards.
#
#   bash scripts/webkit-root.sh    prints one line: "webkit root: built|reused|updated <dir>"
#
# Why a root: Debian 12's WebKitGTK records 0-byte MediaRecorder chunks; trixie's (2.54, from
# trixie-security) records video/mp4 with H.264 and AAC, as iOS Safari does. The root lives in
# WEBKIT_ROOT (default /var/cache/liveness-tests/webkit-trixie) and holds two stamps:
#   .webkit-root-base      suite and mirrors, written once debootstrap has finished;
#   .webkit-root-packages  the package and locale lists, written once they are all installed.
# A first build happens in "<dir>.partial" and is moved into place only when complete, so an
# interrupted build is thrown away and started again. A changed package or locale list is
# installed into the existing root (its stamp is removed first, so an interrupted update is
# redone); a changed suite or mirror builds a new root. Every chroot runs in a private mount
# namespace (unshare), so no mount outlives the script.
set -euo pipefail

root=${WEBKIT_ROOT:-/var/cache/liveness-tests/webkit-trixie}
root=${root%/}
if [ "$(id -u)" -ne 0 ]; then
  exec sudo WEBKIT_ROOT="$root" bash "$0" "$@"
fi
case $root in /*/*) ;; *) echo "WEBKIT_ROOT must be an absolute path below a folder: $root" >&2; exit 1 ;; esac

suite=trixie
packages=(
  webkit2gtk-driver xvfb                  # WebKitWebDriver, MiniBrowser, and an X server for it
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav   # MediaRecorder's H.264 and AAC encoders
  fonts-noto-cjk                          # the page's Chinese text
  locales                                 # the browser's language follows LANG (below)
  ca-certificates                         # apt over https, when the host's mirror is https
)
locales=(zh_CN en_GB en_US)  # each generated as <name>.UTF-8; webkit.py maps "zh-CN" to zh_CN

export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
sbin_path=$PATH:/usr/sbin:/sbin

# The mirror the host's apt uses when it is a Debian one (URIs: in deb822 files, or one-line
# "deb" entries), else deb.debian.org; the security archive likewise.
sources=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
  /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' || true)
host_urls=$(grep -oE 'https?://[^ ]+' <<<"$sources" | sed 's:/*$::' || true)
mirror=$(grep -m1 -E '/debian$' <<<"$host_urls" || echo http://deb.debian.org/debian)
security=$(grep -m1 -E '/debian-security$' <<<"$host_urls" || echo http://deb.debian.org/debian-security)

base_stamp="suite $suite
mirror $mirror
security $security"
packages_stamp="packages ${packages[*]}
locales ${locales[*]}"

log=$(mktemp /tmp/webkit-root.XXXXXX.log)
trap 'rm -f "$log"' EXIT
fail() {
  trap - EXIT  # keep the log to read
  echo "webkit root: $1 failed; the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
}

# Run a shell command inside `dir` with /proc and /dev, in a mount namespace of its own.
in_root() {
  local dir=$1; shift
  unshare --mount --propagation private --fork sh -c '
    set -e
    mount -t proc proc "$1/proc"
    mount --rbind /dev "$1/dev"
    cp /etc/resolv.conf "$1/etc/resolv.conf"
    exec chroot "$1" /bin/sh -c "$2"' sh "$dir" "$*" >>"$log" 2>&1
}

install_packages() {
  local dir=$1
  rm -f "$dir/.webkit-root-packages"
  in_root "$dir" "dpkg --configure -a && apt-get -qq update &&
    apt-get -y -qq -o Dpkg::Use-Pty=0 upgrade &&
    apt-get -y -qq -o Dpkg::Use-Pty=0 install --no-install-recommends ${packages[*]} &&
    apt-get clean" || fail "installing packages"
  local name
  for name in "${locales[@]}"; do
    in_root "$dir" "localedef -i $name -f UTF-8 $name.UTF-8" || fail "generating locale $name.UTF-8"
  done
  printf '%s\n' "$packages_stamp" >"$dir/.webkit-root-packages"
}

if [ "$(cat "$root/.webkit-root-base" 2>/dev/null)" = "$base_stamp" ]; then
  if [ "$(cat "$root/.webkit-root-packages" 2>/dev/null)" = "$packages_stamp" ]; then
    echo "webkit root: reused $root"
  else
    install_packages "$root"
    echo "webkit root: updated $root (packages or locales changed)"
  fi
  exit 0
fi

if [ -e "$root" ] && [ ! -e "$root/.webkit-root-base" ] && [ -n "$(ls -A "$root" 2>/dev/null)" ]; then
  echo "webkit root: $root exists and was not made by this script; remove it or set WEBKIT_ROOT" >&2
  exit 1
fi

if ! PATH=$sbin_path command -v debootstrap >/dev/null || [ ! -e /usr/share/keyrings/debian-archive-keyring.gpg ]; then
  apt-get update -qq >>"$log" 2>&1 && apt-get install -y -qq --no-install-recommends \
    debootstrap debian-archive-keyring >>"$log" 2>&1 || fail "installing debootstrap"
fi

partial=$root.partial
rm -rf "$partial"
mkdir -p "$partial"
unshare --mount --propagation private --fork env PATH="$sbin_path" debootstrap --variant=minbase \
  --include=ca-certificates --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  "$suite" "$partial" "$mirror" >>"$log" 2>&1 || fail "debootstrap"
rm -f "$partial/etc/apt/sources.list"
cat >"$partial/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
printf '%s\n' "$base_stamp" >"$partial/.webkit-root-base"
install_packages "$partial"
chmod 755 "$partial"
rm -rf "$root"
mv "$partial" "$root"
echo "webkit root: built $root"
