#!/bin/bash
# Unpacks QEMU 10 (Debian bookworm-backports' qemu-system-x86) into a private directory,
# without installing it: the system's QEMU 7.2 stays what `qemu-system-x86_64` runs (the
# gVNIC tests need its multi-process proxy). QEMU >= 8.2 is the first whose TCG implements
# the SHA extensions (reference/platform-notes.md section 3), which the SHA-NI system test
# and `make bench` need.
#
# Idempotent: a working binary in the directory is kept. The download goes through
# scripts/apt-private.sh (a private APT configuration under target/apt/bookworm-backports that
# sees only bookworm-backports); the system's apt sources are never changed.
#
# Usage: scripts/qemu10.sh <dir>    (run <dir>/bin/qemu-system-x86_64, a wrapper)
set -euo pipefail

dir=${1:?usage: qemu10.sh <dir>}
mkdir -p "$(dirname "$dir")"
dir=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")
bin="$dir/bin/qemu-system-x86_64"
here=$(cd "$(dirname "$0")" && pwd)
state="$(dirname "$dir")/apt/bookworm-backports"

if [ -x "$bin" ] && grep -q 'audio none' "$bin" && "$bin" --version 2>/dev/null | grep -q 'version 10\.'; then
    exit 0
fi

work=$(mktemp -d)
# apt-get download drops privileges to _apt, which must be able to write here.
chmod 777 "$work"
trap 'rm -rf "$work"' EXIT
cd "$work"
# The emulator itself; its firmware comes from the system's /usr/share/qemu, its libraries
# are bookworm's (a library the loader misses is an error below).
"$here/apt-private.sh" "$state" bookworm-backports apt-get download -q -t bookworm-backports \
    qemu-system-x86 >/dev/null
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
for deb in ./*.deb; do dpkg -x "$deb" "$dir.tmp"; done
missing=$(ldd "$dir.tmp/usr/bin/qemu-system-x86_64" | awk '/not found/ {print $1}')
if [ -n "$missing" ]; then
    echo "qemu10: libraries missing: $missing" >&2
    exit 1
fi
# The wrapper tests and the bench run: QEMU 10 must not load the system QEMU 7.2's modules
# from /usr/lib/x86_64-linux-gnu/qemu (it aborts: "Only modules from the same build"). It
# looks there whatever QEMU_MODULE_DIR says, so the wrapper also turns audio off (the
# default audio backend probe is what loads audio-pa.so) and points QEMU_MODULE_DIR at an
# empty directory. Firmware (SeaBIOS, option ROMs) comes from the system's /usr/share/qemu,
# which the binary looks in by default.
mkdir -p "$dir.tmp/bin" "$dir.tmp/modules"
printf '%s\n' '#!/bin/sh' 'here=$(dirname "$(readlink -f "$0")")/..' \
    'QEMU_MODULE_DIR="$here/modules" exec "$here/usr/bin/qemu-system-x86_64" -audio none "$@"' \
    > "$dir.tmp/bin/qemu-system-x86_64"
chmod +x "$dir.tmp/bin/qemu-system-x86_64"
"$dir.tmp/bin/qemu-system-x86_64" --version | head -1
rm -rf "$dir"
mv "$dir.tmp" "$dir"
