#!/usr/bin/env bash
# Seed the fuzz corpora (fuzz/corpus/<target>/, git-ignored) from the real files under
# tests/fixtures/, host/advisories/testdata/ and docs/, so that fuzzing starts from valid
# inputs instead of empty ones.
#
#   fuzz/seed.sh              # every target in fuzz/fuzz_targets/
#   fuzz/seed.sh dpkg_status  # only these targets
#   cd fuzz && cargo +nightly fuzz run dpkg_status -- -max_total_time=180
#
# Targets that link bulkhead-scan build its embedded wasm analyzers; when the nightly has
# no wasm32-wasip2 target, build them with the pinned toolchain:
#   BULKHEAD_WASM_TOOLCHAIN=1.95.0 cargo +nightly fuzz run layer_walk
#
# Seeds are named by their SHA-1, as libFuzzer names its own corpus entries, so running
# the script again adds nothing twice. Files over 1 MiB are left out: libFuzzer's default
# input length follows the largest seed, and big inputs slow every run down.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../tests/fixtures"
feeds="$here/../host/advisories/testdata"
images="$fixtures/images"
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
        # Manifests, indexes and configs: the OCI layout and registry documents (the
        # layer blobs are not JSON and are left to docker_archive and layer_walk).
        manifest | registry_documents)
            find "$images" -type f \( -name '*.json' -o -path '*/blobs/sha256/*' \) \
                -size -8k ;;
        docker_archive) find "$images" -type f -name 'scalibr-basic.tar' ;;
        advisory_osv) find "$feeds/osv" -type f \( -name '*.json' -o -name '*.yaml' \) ;;
        advisory_alpine) find "$feeds/alpine" -type f ;;
        advisory_debian) find "$feeds/debian" -type f ;;
        advisory_nvd) find "$feeds/nvd" -type f ;;
        advisory_csaf) find "$feeds/csaf" -type f ;;
        openvex) find "$fixtures/vex" -type f -name '*.json' ;;
        webhook) find "$fixtures/registry-events" -type f -name '*.json' ;;
        # Each real release file alone is a valid input (the first chunk is os-release).
        release) find "$here/../analyzers/sdk/testdata/os" -type f ! -name '*.md' ;;
        # Generated below from the fixtures: queries from the query corpus, layers and
        # archives from the image and rootfs fixtures, ignore files from the docs.
        query_* | layer_walk | bulkheadignore) ;;
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
    case "$target" in
        rpm_sqlite)
            # Each database followed by its write-ahead log: the target splits them at the
            # log's magic number.
            while IFS= read -r wal; do
                cat "${wal%-wal}" "$wal" > "$tmp/with-wal"
                add "$corpus" "$tmp/with-wal"
            done < <(find "$fixtures/rpm" -type f -name 'rpmdb.sqlite-wal')
            ;;
    esac
    case "$target" in
        manifest | registry_documents)
            # The configs of the docker-archive fixtures.
            rm -rf "$tmp/x" && mkdir -p "$tmp/x"
            tar -xf "$images/scalibr-basic.tar" -C "$tmp/x" --wildcards '*.json'
            tar -xzf "$images/alpine-311.tar.gz" -C "$tmp/x" --wildcards '*.json'
            while IFS= read -r f; do add "$corpus" "$f"; done \
                < <(find "$tmp/x" -maxdepth 1 -type f -name '*.json')
            ;;
        docker_archive)
            # The archive gzipped, and manifest.json files alone (the target packs an
            # input starting with `[` into an archive of its own, whose paths one of
            # them is rewritten to name).
            gzip -9c "$images/scalibr-basic.tar" > "$tmp/archive.tar.gz"
            add "$corpus" "$tmp/archive.tar.gz"
            tar -xOf "$images/scalibr-basic.tar" manifest.json > "$tmp/m1.json"
            tar -xzOf "$images/alpine-311.tar.gz" manifest.json > "$tmp/m2.json"
            add "$corpus" "$tmp/m1.json"
            add "$corpus" "$tmp/m2.json"
            sed -E 's#"Config":"[^"]*"#"Config":"config.json"#;
                s#"Layers":\[[^]]*\]#"Layers":["a/layer.tar","b/layer.tar"]#' \
                "$tmp/m1.json" > "$tmp/m3.json"
            add "$corpus" "$tmp/m3.json"
            ;;
        layer_walk)
            # The layers of the docker-archive fixture, and layers made of the rootfs
            # fixtures with links, hard links and whiteouts added; each plain, gzip and
            # zstd (the target picks the decompressor by magic, as the manifest would).
            rm -rf "$tmp/l" && mkdir -p "$tmp/l"
            tar -xf "$images/scalibr-basic.tar" -C "$tmp/l" --wildcards '*/layer.tar'
            n=0
            for root in "$fixtures"/apk/alpine-3.6 "$fixtures"/apk/syft/single \
                "$fixtures"/apk/syft/multiple-1; do
                n=$((n + 1))
                r="$tmp/l/root$n"
                mkdir -p "$r"
                cp -r "$root"/. "$r"/
                rm -f "$r"/expected-packages.tsv
                mkdir -p "$r/usr/lib" "$r/var/lib/dpkg/status.d" "$r/etc/apk"
                ln -sf ../../etc/os-release "$r/usr/lib/os-release"
                ln -sf /etc/../../../etc/passwd "$r/small"
                [ -e "$r/lib/apk/db/installed" ] && ln -f "$r/lib/apk/db/installed" "$r/etc/apk/copy"
                : > "$r/var/lib/dpkg/.wh.status"
                : > "$r/etc/apk/.wh..wh..opq"
                tar -C "$r" -cf "$tmp/l/root$n.tar" .
            done
            while IFS= read -r f; do
                add "$corpus" "$f"
                gzip -9c "$f" > "$f.gz" && add "$corpus" "$f.gz"
                if command -v zstd > /dev/null; then
                    zstd -q -19 -c "$f" > "$f.zst" && add "$corpus" "$f.zst"
                fi
            done < <(find "$tmp/l" -type f -name '*.tar')
            ;;
        bulkheadignore)
            # The YAML examples of docs/suppressions.md, and the one-line ignore files
            # of the unit tests in host/scan/src/assess/suppress.rs.
            rm -f "$tmp"/ignore.*
            awk -v dir="$tmp" '/^```yaml/ { n++; y = 1; next } /^```/ { y = 0; next }
                y { print > (dir "/ignore." n) }' "$here/../docs/suppressions.md"
            n=0
            while IFS= read -r literal; do
                n=$((n + 1))
                literal=${literal#\"}
                printf '%b' "${literal%\"}" > "$tmp/ignore.t$n"
            done < <(grep -oE '"([^"\\]|\\.)*id: ([^"\\]|\\.)*"' \
                "$here/../host/scan/src/assess/suppress.rs")
            for s in "$tmp"/ignore.*; do
                [ -e "$s" ] && add "$corpus" "$s"
            done
            ;;
    esac
    echo "$target: $(find "$corpus" -type f | wc -l) inputs in $corpus"
done
