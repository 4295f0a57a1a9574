#!/usr/bin/env bash
# Installs the Debian packages the tests use: GStreamer's RTSP server (the real
# RTSP camera the tests talk to), ffmpeg (encodes the H.264 test clips),
# Prometheus (scrapes a live pipeline in the deploy tests), kubectl (renders the
# Kustomize manifests with the real kustomize), Chromium and its driver (load the
# live view as a person would) and iproute2 (`ss` reads the HTTP listen backlog).
# Only as root with apt-get; elsewhere it names what is missing and leaves the
# decision to the tests.
set -euo pipefail
packages=(
  ffmpeg
  python3-gi
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  prometheus
  kubectl
  chromium
  chromium-driver
  iproute2
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing Debian packages (install them as root): ${missing[*]}" >&2
fi
