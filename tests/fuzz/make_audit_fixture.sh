#!/bin/bash
# tests/fuzz/make_audit_fixture.sh [BUILD] - (re)make the audit harness's
# fixture and seeds from a real volume: the tools of BUILD (default build/)
# create a volume, rotate its KEK, retire and destroy a version, and a
# mount locks and unlocks it, so the log holds records every writer makes.
#
# Writes tests/fuzz/fixtures/audit/ (the key file, and the volume's .ekmfs
# metadata: descriptor, keyring, audit key, chain head) and
# tests/fuzz/corpus/audit/real-* (the log, as the harness's modes take it).
# Run as root (the mount). The key file is a test key, made for this
# fixture only.
set -eu -o pipefail
cd "$(dirname "$0")/../.."
B=$(realpath "${1:-build}")
FIX=tests/fuzz/fixtures/audit
T=$(mktemp -d /tmp/ekmfs-audit-fixture-XXXXXX)
trap 'fusermount3 -uz "$T/mnt" 2>/dev/null || true; rm -rf "$T"' EXIT

mkdir "$T/backing" "$T/mnt" "$T/keys"
chmod 700 "$T/keys"
cat >"$T/ekmfs.ini" <<INI
[tenant.default]
key_file = $T/keys/local.key
[audit]
file = $T/audit.log
INI
"$B/ekmfs-admin" -c "$T/ekmfs.ini" init "$T/backing"
"$B/ekmfs-rotate" -c "$T/ekmfs.ini" kek "$T/backing"
"$B/ekmfs-rotate" -c "$T/ekmfs.ini" kek "$T/backing"
"$B/ekmfs-rotate" -c "$T/ekmfs.ini" retire --version 1 --destroy "$T/backing"
"$B/ekmfs" -c "$T/ekmfs.ini" -f "$T/backing" "$T/mnt" 2>"$T/daemon.log" &
for _ in $(seq 100); do mountpoint -q "$T/mnt" && break; sleep 0.1; done
echo hello >"$T/mnt/file"
"$B/ekmfs-admin" -c "$T/ekmfs.ini" lock "$T/mnt"
"$B/ekmfs-admin" -c "$T/ekmfs.ini" unlock "$T/mnt"
fusermount3 -u "$T/mnt"
wait

rm -rf "$FIX"
mkdir -p "$FIX/backing/.ekmfs" tests/fuzz/corpus/audit
cp "$T/keys/local.key" "$FIX/local.key"
for f in volume.json keyring.json audit.key.json audit.head; do
	cp "$T/backing/.ekmfs/$f" "$FIX/backing/.ekmfs/$f"
done
# Harness input: byte 0 the mode (fuzz_audit.c), then the file.
C=tests/fuzz/corpus/audit
{ printf '\0'; cat "$T/audit.log"; } >"$C/real-verify"
{ printf '\1'; cat "$T/audit.log"; } >"$C/real-append"
{ printf '\1'; head -n -1 "$T/audit.log"; } >"$C/real-append-behind"
{ printf '\1'; cat "$T/audit.log"; printf '{"seq":'; } >"$C/real-append-torn"
{ printf '\2'; cat "$T/backing/.ekmfs/audit.head"; } >"$C/real-head"
{ printf '\3'; cat "$T/backing/.ekmfs/audit.key.json"; } >"$C/real-key"
echo "fixture: $FIX ($(wc -l <"$T/audit.log") records)"
