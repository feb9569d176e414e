#!/bin/bash
# Runs apt-get (or apt-cache) against a private APT configuration that sees the Debian suites
# named, without touching the system's sources, lists or cache: everything lives under STATE
# (normally target/apt/<name>). The system's QEMU 7.2 and its packages stay what they are; this
# only ever downloads .deb files for the project to unpack under target/.
#
# Usage: scripts/apt-private.sh STATE "SUITE..." apt-get|apt-cache ARGS...
#   scripts/apt-private.sh target/apt/trixie "trixie trixie-backports" apt-get download qemu-system-x86
#
# The lists are refreshed when older than a day (or missing). apt-get download drops
# privileges to _apt, so run it in a directory _apt may write (mktemp -d; chmod 777).
set -euo pipefail

state=${1:?usage: apt-private.sh STATE "SUITES" apt-get|apt-cache ARGS...}
suites=${2:?suites}
tool=${3:?apt-get or apt-cache}
shift 3
case "$tool" in apt-get|apt-cache) ;; *) echo "apt-private: tool must be apt-get or apt-cache" >&2; exit 2 ;; esac

mkdir -p "$state/sources" "$state/lists/partial" "$state/cache/archives/partial"
state=$(cd "$state" && pwd)
src="$state/sources/private.sources"
want=$(printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' "Suites: $suites" \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg')
if [ ! -e "$src" ] || [ "$(cat "$src")" != "$want" ]; then
    printf '%s\n' "$want" > "$src"
    rm -f "$state/lists/"*_Packages* "$state/lists/"*Release* 2>/dev/null || true
fi

opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$state/sources"
    -o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache"
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts="$state/sources"
    -o APT::Get::List-Cleanup=false -o Debug::NoLocking=1)

stamp="$state/lists/.updated"
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
    # _apt must be able to write the partial downloads.
    chmod -R a+rwX "$state/lists" "$state/cache" 2>/dev/null || true
    apt-get "${opts[@]}" -qq update >&2
    touch "$stamp"
fi

exec "$tool" "${opts[@]}" "$@"
