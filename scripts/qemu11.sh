#!/bin/bash
# Unpacks QEMU 11.1 (Debian trixie-backports' qemu-system-x86, with the vfio-user client
# `vfio-user-pci`) and exactly the trixie runtime it needs into a private directory, without
# installing anything: the system's QEMU 7.2 and `make qemu10` stay what they are.
#
# QEMU 11.1 is built against trixie's glibc 2.41; bookworm has 2.36. So the wrapper runs it
# through trixie's own dynamic loader with --library-path pointing at the unpacked trixie
# libraries (reference/qemu11-vfio-user.md section 1). Which libraries: the candidates are
# the library packages qemu-system-x86 depends on, recursively (apt-cache depends through the
# private APT configuration of scripts/apt-private.sh); of those, only the packages that
# provide a shared object the binary needs (its DT_NEEDED closure, resolved against the
# unpacked candidates) are unpacked. The list is written to <dir>/PACKAGES.
#
# Idempotent: a working binary in the directory is kept; .deb files are cached under
# target/apt/trixie/debs. Debian's packages only.
#
# Usage: scripts/qemu11.sh <dir>    (run <dir>/bin/qemu-system-x86_64, a wrapper)
set -euo pipefail

QEMU_VERSION=${QEMU11_VERSION:-1:11.1.3+ds-2~bpo13+1}
dir=${1:?usage: qemu11.sh <dir>}
mkdir -p "$(dirname "$dir")"
dir=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")
here=$(cd "$(dirname "$0")" && pwd)
bin="$dir/bin/qemu-system-x86_64"
state="$(dirname "$dir")/apt/trixie"
suites="trixie trixie-backports"
apt() { "$here/apt-private.sh" "$state" "$suites" "$@"; }

if [ -x "$bin" ] && grep -q 'share/seabios' "$bin" && "$bin" --version 2>/dev/null | grep -q 'version 11\.'; then
    exit 0
fi

debs="$state/debs"
mkdir -p "$debs"
chmod 777 "$debs"
# Downloads PKG[=VERSION]... into the .deb cache unless a file of that name is there.
fetch() {
    local want=()
    for p in "$@"; do
        local name=${p%%=*}
        ls "$debs/${name}_"*.deb >/dev/null 2>&1 || want+=("$p")
    done
    if [ ${#want[@]} -gt 0 ]; then
        (cd "$debs" && apt apt-get download -q "${want[@]}" >/dev/null)
    fi
}

# The emulator, its data (firmware blobs, keymaps) and SeaBIOS (the data package's
# bios-256k.bin is a link into seabios' directory), all from the same archive.
fetch "qemu-system-x86=$QEMU_VERSION" "qemu-system-data=$QEMU_VERSION" seabios

# Candidate runtime packages: every library package in qemu-system-x86's dependency closure
# (Depends/Pre-Depends only). Virtual names (<...>) and non-library packages are skipped.
candidates=$(apt apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "qemu-system-x86=$QEMU_VERSION" \
    | grep -E '^(lib[a-z0-9.+-]+|zlib1g)$' | sort -u)
# shellcheck disable=SC2086
fetch $candidates

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Every candidate unpacked on its own, so each shared object can be traced to its package.
for p in $candidates; do
    deb=$(ls "$debs/${p}_"*.deb | head -1)
    mkdir -p "$work/pkg/$p"
    dpkg-deb -x "$deb" "$work/pkg/$p"
done
find "$work/pkg" \( -type f -o -type l \) -name '*.so*' | while read -r f; do
    rel=${f#"$work/pkg/"}
    echo "$(basename "$f") ${rel%%/*}"
done | sort -u > "$work/soname-index"

rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
for p in qemu-system-x86 qemu-system-data seabios; do
    dpkg-deb -x "$(ls "$debs/${p}_"*.deb | head -1)" "$dir.tmp"
done

# The DT_NEEDED closure of the binary, each soname resolved to the package that ships it.
needed() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
declare -A seen=() keep=([libc6]=1)
queue=$(needed "$dir.tmp/usr/bin/qemu-system-x86_64")
while [ -n "$queue" ]; do
    next=""
    for so in $queue; do
        [ -n "${seen[$so]:-}" ] && continue
        seen[$so]=1
        pkg=$(awk -v s="$so" '$1 == s {print $2; exit}' "$work/soname-index")
        if [ -z "$pkg" ]; then
            echo "qemu11: no trixie package in qemu-system-x86's closure ships $so" >&2
            exit 1
        fi
        keep[$pkg]=1
        file=$(find "$work/pkg/$pkg" -name "$so" | head -1)
        file=$(readlink -f "$file")
        next="$next $(needed "$file")"
    done
    queue=$next
done
for p in "${!keep[@]}"; do
    dpkg-deb -x "$(ls "$debs/${p}_"*.deb | head -1)" "$dir.tmp"
done
printf '%s\n' qemu-system-x86 qemu-system-data seabios "${!keep[@]}" | sort > "$dir.tmp/PACKAGES"

# The wrapper. Debian's QEMU looks for firmware in /usr/share/qemu, /usr/share/seabios and
# /usr/lib/ipxe/qemu; the -L directories come first, so the BIOS is trixie's SeaBIOS from the
# tree, not the system's (NIC option ROMs are not unpacked: run with -nic none).
# QEMU_MODULE_DIR points at an empty directory and audio is off: the binary's
# built-in module path is where the system's QEMU 7.2 keeps its modules, and loading one
# aborts ("Only modules from the same build can be loaded"); vfio-user-pci is built in.
mkdir -p "$dir.tmp/bin" "$dir.tmp/modules"
cat > "$dir.tmp/bin/qemu-system-x86_64" <<'EOF'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")/..
lib="$here/usr/lib/x86_64-linux-gnu"
QEMU_MODULE_DIR="$here/modules" exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib" \
    "$here/usr/bin/qemu-system-x86_64" -L "$here/usr/share/qemu" -L "$here/usr/share/seabios" \
    -audio none "$@"
EOF
chmod +x "$dir.tmp/bin/qemu-system-x86_64"
"$dir.tmp/bin/qemu-system-x86_64" --version | head -1
"$dir.tmp/bin/qemu-system-x86_64" -device vfio-user-pci,help >/dev/null
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "qemu11: $(wc -l < "$dir/PACKAGES") packages in $dir (see PACKAGES)"
