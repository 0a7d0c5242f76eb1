#!/usr/bin/env bash
# Seed the fuzz corpora (fuzz/corpus/<target>/, git-ignored) from the real databases under
# tests/fixtures/, so that fuzzing starts from valid inputs instead of empty ones.
#
#   fuzz/seed.sh              # every target in fuzz/fuzz_targets/
#   fuzz/seed.sh dpkg_status  # only these targets
#   cd fuzz && cargo +nightly fuzz run dpkg_status -- -max_total_time=180
#
# Seeds are named by their SHA-1, as libFuzzer names its own corpus entries, so running
# the script again adds nothing twice. Files over 1 MiB are left out: libFuzzer's default
# input length follows the largest seed, and big inputs slow every run down.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../tests/fixtures"
max_size=$((1 << 20))

# The fixture files each target parses, by file name.
sources() {
    case "$1" in
        dpkg_*)
            find "$fixtures/dpkg" -type f \( -name status -o -name '*.status' \
                -o -path '*/status.d/*' -o -name '*.list' \) ;;
        apk_*) find "$fixtures/apk" -type f -name installed ;;
        rpm_bdb) find "$fixtures/rpm" -type f -name Packages ;;
        rpm_ndb) find "$fixtures/rpm" -type f -name Packages.db ;;
        rpm_sqlite) find "$fixtures/rpm" -type f -name 'rpmdb.sqlite' ;;
        # Header blobs live inside the databases: the whole files are the best seeds we
        # have, and libFuzzer's mutations find the blobs' boundaries from there.
        rpm_*) find "$fixtures/rpm" -type f \( -name Packages -o -name Packages.db \
            -o -name 'rpmdb.sqlite' \) ;;
        # Queries are extracted from the query corpus below, one file each.
        query_*) ;;
        *) echo "seed.sh: no fixtures known for target $1" >&2 ;;
    esac 2>/dev/null || true
}

add() { # add <corpus dir> <file>
    local size
    size=$(stat -c %s "$2")
    if [ "$size" -gt 0 ] && [ "$size" -le "$max_size" ]; then
        cp "$2" "$1/$(sha1sum "$2" | cut -d' ' -f1)"
    fi
}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in "$here"/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for target in "${targets[@]}"; do
    corpus="$here/corpus/$target"
    mkdir -p "$corpus"
    while IFS= read -r file; do
        [ -n "$file" ] || continue
        add "$corpus" "$file"
        case "$target" in
            dpkg_* | apk_*)
                # Also each stanza alone: small inputs make many more runs per second.
                rm -f "$tmp"/stanza.*
                awk -v dir="$tmp" 'BEGIN { RS = ""; ORS = "\n" }
                    NR <= 400 { print > (dir "/stanza." NR) }' "$file"
                for s in "$tmp"/stanza.*; do
                    [ -e "$s" ] && add "$corpus" "$s"
                done
                ;;
        esac
    done < <(sources "$target")
    case "$target" in
        query_*)
            # Each case of host/query/tests/corpus.kql: the lines between `# name` and
            # the `> columns` line.
            rm -f "$tmp"/query.*
            awk -v dir="$tmp" '
                /^# / { n++; q = 1; next }
                /^>/  { q = 0; next }
                q && n && !/^--/ { print > (dir "/query." n) }' \
                "$here/../host/query/tests/corpus.kql"
            for s in "$tmp"/query.*; do
                [ -e "$s" ] && add "$corpus" "$s"
            done
            ;;
    esac
    echo "$target: $(find "$corpus" -type f | wc -l) inputs in $corpus"
done
