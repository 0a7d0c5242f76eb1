#!/usr/bin/env bash
# Regenerates the version lists in this folder from real data: the fixture pool (advisory
# feeds, see SOURCES.md) and the package databases under tests/fixtures/. One version per
# line, sorted, unique; lists over $MAX lines keep every Nth line so the repository stays
# small (the oracle tests draw pairs from these lists and ask the real tools).
#
#   host/versions/testdata/extract.sh [FIXTURE_POOL]     (default /work/shared/fixtures)
#
# Only needed when refreshing the lists; the tests read the committed files.
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
pool="${1:-/work/shared/fixtures}"
MAX=4000

# Keep at most $MAX lines of stdin (sorted, unique): every Nth one, deterministic.
cap() {
  local tmp
  tmp="$(mktemp)"
  sort -u >"$tmp"
  local n
  n=$(wc -l <"$tmp")
  if [ "$n" -gt "$MAX" ]; then
    awk -v step="$(( (n + MAX - 1) / MAX ))" 'NR % step == 1 || step == 1' "$tmp"
  else
    cat "$tmp"
  fi
  rm -f "$tmp"
}

# Debian: installed versions from the dpkg databases (Version: and the version in
# "Source: name (version)"), and fixed versions from the security tracker's DSA/DLA lists
# ("\t[release] - package version"; "<unfixed>", "<not-affected>" etc. are not versions).
{
  find "$repo/tests/fixtures/dpkg" -type f \( -name status -o -name '*.status' -o -path '*/status.d/*' \) \
    ! -name '*.md5sums' ! -name '*.preinst' ! -name vcpkg.status -print0 |
    xargs -0 cat |
    sed -n -e 's/^Version: *//p' -e 's/^Source: [^ ]* (\(.*\))$/\1/p'
  grep -hE $'^\t\\[[a-z-]+\\] - ' "$pool/debian-security-tracker/data/DSA/list" \
    "$pool/debian-security-tracker/data/DLA/list" | awk '$4 ~ /^[0-9]/ {print $4}'
} | cap >"$here/deb.txt"

# RPM: AlmaLinux errata "fixed" events ([epoch:]version-release), and EVRs from the rpm -qa
# listings of the rpm analyzer's fixtures (name, epoch, version, release, ... columns; the
# small-1k listing has name, EVR, ...).
{
  grep -rhoE '"fixed": *"[^"]*"' "$pool/almalinux-osv-database/advisories" | awk -F'"' '{print $4}'
  for f in "$repo"/tests/fixtures/rpm/*/*.tsv; do
    case "$f" in
      */small-1k.rpm-qa.tsv) cut -f2 "$f" ;;
      *) awk -F'\t' 'NF >= 4 && $3 != "" { print ($2 == "" ? "" : $2 ":") $3 "-" $4 }' "$f" ;;
    esac
  done
} | grep -v '^(none)' | cap >"$here/rpm.txt"

# Alpine: installed versions (V: lines of lib/apk/db/installed) and secdb fixed versions
# (the keys under secfixes:, some quoted).
{
  find "$repo/tests/fixtures/apk" -type f -name installed -print0 | xargs -0 sed -n 's/^V://p'
  grep -hE '^        [^ ].*:$' "$pool"/alpine-secdb/v3.*/*.yaml | sed -e 's/^ *//' -e 's/:$//' -e "s/[\"']//g"
} | grep -vx '0' | cap >"$here/apk.txt"

# PyPI: every version listed in the PyPA advisories (the "versions:" lists and the
# introduced/fixed/last_affected events).
{
  for f in $(find "$pool/pypa-advisory-database/vulns" -name '*.yaml' | sort); do
    awk '/^  versions:/ {inlist = 1; next}
         inlist && /^  - / {sub(/^  - /, ""); print; next}
         {inlist = 0}
         /^ *- (introduced|fixed|last_affected): / {sub(/^ *- [a-z_]+: /, ""); print}' "$f"
  done
} | sed -e "s/^[\"']//" -e "s/[\"']\$//" | grep -vx '0' | cap >"$here/pep440.txt"

# The introduced/fixed/last_affected versions of the SEMVER ranges of OSV files (not the
# ecosystem_specific custom ranges some Go entries carry, which hold non-Go tags).
osv_semver() {
  python3 - "$1" <<'PY'
import json, os, sys
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        if not name.endswith(".json"):
            continue
        with open(os.path.join(root, name)) as f:
            doc = json.load(f)
        for affected in doc.get("affected", []):
            for r in affected.get("ranges", []):
                if r.get("type") != "SEMVER":
                    continue
                for event in r.get("events", []):
                    for key in ("introduced", "fixed", "last_affected"):
                        v = event.get(key)
                        if v and v not in ("0", "0.0.0-0"):
                            print(v)
PY
}

# Go modules: the Go vulnerability database (no "v" prefix; includes pseudo-versions).
osv_semver "$pool/golang-vulndb/data/osv" | cap >"$here/go.txt"

# crates.io: the RustSec advisories.
osv_semver "$pool/rustsec-advisory-db/osv-branch/crates" | cap >"$here/semver.txt"

wc -l "$here"/*.txt
