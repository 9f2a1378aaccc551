#!/usr/bin/env bash
# Install the Debian packages Tessera needs, only those missing. Used by `make demo`,
# `make test` and CI. Set TSR_NO_APT=1 to only report what is missing.
set -euo pipefail
pkgs=(
    build-essential pkg-config
    ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
    libpng-dev libjpeg62-turbo-dev libwebp-dev libtiff-dev liblcms2-dev libyaml-dev libcmocka-dev
    libvips-tools python3 time
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: missing Debian packages: ${missing[*]}"
[ "${TSR_NO_APT:-0}" = 1 ] && exit 1
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
