#!/usr/bin/env bash
# Scan-on-push benchmark (issue 6, item 9): push-to-findings latency of `bulkhead serve`
# for an Alpine and a Debian image, and the throughput of a storm of 100 images sharing
# their base layer, against a floor measured in the same run. See bench/README.md.
#
#   bench/service-latency.sh   # ~4 min with the Debian image cached by bench/image-scan.sh
#
# Setup: a private docker-registry on a random loopback port whose notifications go to a
# `bulkhead serve` (SQLite store, 2 workers, advisory db imported from the repo's feeds),
# two tenants (bench/…: latency; storm/…: the storm) with a reader token each.
# Images: the Alpine 3.20.3 minirootfs (tests/fixtures/images) and the Debian bookworm
# minbase image of bench/image-scan.sh (its cache under target/bench/, built if absent),
# each as many variants = the base layer + one small unique layer (bench/service-variants.py),
# so that every push is a new digest whose result cannot be reused, while the base layer is
# the same, as with rebuilt application images.
#   latency  ALPINE_ROUNDS (20) / DEBIAN_ROUNDS (10) rounds of one cold push (the service's
#            layer cache emptied first) and one warm push (base layer analysis cached), each
#            timed from the manifest PUT (and from skopeo's start) to the first API answer
#            with a result. p50, p95 (nearest rank), max. Targets: p95 <= 2 s (Alpine),
#            <= 5 s (Debian).
#   storm    STORM (100) Debian variants pushed by STORM_PARALLEL (8) skopeo at once into an
#            empty layer cache, from the first push to all scanned, against the floor: the
#            same blobs fetched once each (the base layer once) with curl | gunzip.
# Targets are reported, not asserted: the exit status is non-zero only when something broke
# (a tool, the registry, the service, a scan that failed or reports the wrong packages).
#
# Env knobs: ALPINE_ROUNDS (20), DEBIAN_ROUNDS (10), STORM (100), STORM_PARALLEL (8),
# SKIP_STORM=1, POLL_MS (10), WAIT_QUIET=1, PROFILE=1 (perf profile of the service during the
# storms), BULKHEAD (binary, default target/release/bulkhead),
# BENCH_WORK (target/bench), RESULTS (bench/results/service-latency.txt), KEEP_RUN=1 (keep the
# run directory: service and registry logs, store, raw rows).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${BENCH_WORK:-$ROOT/target/bench}
BULKHEAD_SRC=${BULKHEAD:-$ROOT/target/release/bulkhead}
ALPINE_ROUNDS=${ALPINE_ROUNDS:-20}
DEBIAN_ROUNDS=${DEBIAN_ROUNDS:-10}
STORM=${STORM:-100}
STORM_PARALLEL=${STORM_PARALLEL:-8}
POLL_MS=${POLL_MS:-10}
RESULTS=${RESULTS:-$HERE/results/service-latency.txt}
ALPINE_FIXTURE="$ROOT/tests/fixtures/images/alpine-minirootfs-3.20.3-x86_64.tar.gz"
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

RUN="$WORK/service-run.$$"
LOGS="$WORK/logs"
mkdir -p "$WORK" "$LOGS" "$RUN"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$SECONDS
REG_PID="" SVC_PID=""

# stop PID: SIGTERM, wait (a zombie counts as gone: kill -0 succeeds on it), then SIGKILL.
stop() {
  local pid=$1 st=""
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 200); do
    st=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    [[ -z $st || $st == Z* ]] && return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop "$SVC_PID"
  stop "$REG_PID"
  if [[ -d $RUN ]]; then
    cp "$RUN/service.log" "$LOGS/service-latency-service.log" 2>/dev/null || true
    cp "$RUN/registry.log" "$LOGS/service-latency-registry.log" 2>/dev/null || true
  fi
  if [[ ${KEEP_RUN:-0} == 1 ]]; then
    log "kept $RUN"
  else
    rm -rf "$RUN"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[service-latency %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}
now_us() { printf '%s' "${EPOCHREALTIME/./}"; }

# ---------------------------------------------------------------------------------------------
# 1. Tools and the binary
# ---------------------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    apt-get update -qq >"$LOGS/apt.log" 2>&1 || return 1
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$LOGS/apt.log" 2>&1
}
need=()
declare -A PKG_OF=([mmdebstrap]=mmdebstrap [mmtarfilter]=mmdebstrap [docker-registry]=docker-registry
  [skopeo]=skopeo [curl]=curl [dpkg-query]=dpkg [unshare]=util-linux)
for cmd in "${!PKG_OF[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${PKG_OF[$cmd]}")
done
if ((${#need[@]})); then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  apt_install "${need[@]}" || die "apt-get install ${need[*]} (see $LOGS/apt.log)"
fi
command -v igzip >/dev/null 2>&1 || apt_install isal || log "isal (igzip) unavailable"
# The floor's decompressor: igzip (fastest on this machine, see results/image-scan.txt),
# else pigz, else gzip.
DEC=gzip
for d in pigz igzip; do command -v "$d" >/dev/null 2>&1 && DEC=$d; done

# Benchmark a private copy: someone may rebuild target/release/bulkhead during the run.
BH="$RUN/bulkhead"
for attempt in $(seq 1 40); do
  if [[ -x $BULKHEAD_SRC ]] && cp "$BULKHEAD_SRC" "$BH.tmp" 2>/dev/null && "$BH.tmp" --version >/dev/null 2>&1; then
    mv "$BH.tmp" "$BH"
    break
  fi
  if [[ ! -e $BULKHEAD_SRC ]] && ! pgrep -x cargo >/dev/null; then
    log "building bulkhead (cargo build --release -p bulkhead)"
    (cd "$ROOT" && nice cargo build --release -p bulkhead) >"$LOGS/cargo-build.log" 2>&1 ||
      log "cargo build failed (see $LOGS/cargo-build.log); retrying"
  else
    log "waiting for $BULKHEAD_SRC (being rebuilt?), attempt $attempt"
    sleep 15
  fi
done
[[ -x $BH ]] || die "no working bulkhead binary at $BULKHEAD_SRC"
BH_VERSION=$("$BH" --version)
BH_SHA=$(sha256sum "$BH" | cut -c1-16)

# ---------------------------------------------------------------------------------------------
# 2. Images
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/oci"
# Alpine: the real minirootfs tarball (gzip) as one layer, repacked by oci-pack.py.
ALP_DIR="$WORK/alpine"
ALP_TAR="$ALP_DIR/alpine-minirootfs-3.20.3.tar"
mkdir -p "$ALP_DIR"
if [[ ! -s $ALP_TAR || $ALP_TAR -ot $ALPINE_FIXTURE ]]; then
  gzip -dc "$ALPINE_FIXTURE" >"$ALP_TAR.tmp" || die "gunzip $ALPINE_FIXTURE"
  mv "$ALP_TAR.tmp" "$ALP_TAR"
fi
# The reference package count: apk's own database in the rootfs (one P: line per package).
ALP_PKGS=$(tar -xOf "$ALP_TAR" ./lib/apk/db/installed | grep -c '^P:') || die "no lib/apk/db/installed in $ALP_TAR"

# Debian: bench/image-scan.sh's image (same paths and cache key, so each reuses the other's).
DEB_DIR="$WORK/debian"
DEB_TAR="$DEB_DIR/bookworm-minbase.tar"
mkdir -p "$DEB_DIR"
if [[ ! -s $DEB_TAR ]]; then
  log "mmdebstrap --variant=minbase bookworm (about a minute)"
  mkdir -p "$WORK/tmp"
  TMPDIR="$WORK/tmp" mmdebstrap --variant=minbase bookworm "$DEB_DIR/raw.tar" >"$LOGS/mmdebstrap.log" 2>&1 ||
    die "mmdebstrap (see $LOGS/mmdebstrap.log)"
  mmtarfilter --path-exclude='/dev/*' <"$DEB_DIR/raw.tar" >"$DEB_TAR.tmp" || die "mmtarfilter"
  mv "$DEB_TAR.tmp" "$DEB_TAR"
  rm -f "$DEB_DIR/raw.tar"
fi
REF="$RUN/debian-ref"
mkdir -p "$REF"
tar -xf "$DEB_TAR" -C "$REF" ./var/lib/dpkg/status || die "no ./var/lib/dpkg/status in $DEB_TAR"
mkdir -p "$REF/var/lib/dpkg/info" "$REF/var/lib/dpkg/updates"
DEB_PKGS=$(dpkg-query --admindir="$REF/var/lib/dpkg" -W -f '${db:Status-Abbrev}\n' | grep -c '^ii')
DEB_VERSION=$(tar -xOf "$DEB_TAR" ./etc/debian_version 2>/dev/null || echo '?')

# pack NAME TAG TAR: OCI layout $WORK/oci/NAME, rebuilt only when an input changed (the key
# is image-scan.sh's: oci-pack.py's hash, the tar's size and mtime, the tag and the layers).
pack() {
  local name=$1 tag=$2 tar=$3 dir="$WORK/oci/$1" key
  key=$(
    sha256sum "$HERE/oci-pack.py" | cut -d' ' -f1
    stat -c '%s %Y' "$tar"
    printf '%s\n' "$tag" "tar:$tar"
  )
  if [[ -s "$dir.json" && "$(cat "$dir.stamp" 2>/dev/null)" == "$key" ]]; then
    return
  fi
  log "packing $name"
  rm -rf "$dir" "$dir.json" "$dir.stamp"
  "$PY" "$HERE/oci-pack.py" "$dir" --tag "$tag" "tar:$tar" >"$dir.json.tmp" 2>"$LOGS/pack-$name.log" ||
    die "oci-pack.py $name (see $LOGS/pack-$name.log)"
  mv "$dir.json.tmp" "$dir.json"
  printf '%s' "$key" >"$dir.stamp"
}
pack alpine 3.20.3 "$ALP_TAR"
pack debian minbase "$DEB_TAR"

# The variants: base + one unique layer each, in layouts of this run (base blobs hard-linked).
log "making variants (alpine: 2 x $ALPINE_ROUNDS, debian: 2 x $DEBIAN_ROUNDS + $STORM)"
"$PY" "$HERE/service-variants.py" "$WORK/oci/alpine" 3.20.3 "$RUN/oci-alpine" \
  "cold:$ALPINE_ROUNDS" "warm:$ALPINE_ROUNDS" >"$RUN/variants-alpine.json" || die "service-variants.py alpine"
deb_sets=("cold:$DEBIAN_ROUNDS" "warm:$DEBIAN_ROUNDS")
[[ ${SKIP_STORM:-0} == 1 ]] || deb_sets+=("skopeo:$STORM" "burst:$STORM")
"$PY" "$HERE/service-variants.py" "$WORK/oci/debian" minbase "$RUN/oci-debian" "${deb_sets[@]}" \
  >"$RUN/variants-debian.json" || die "service-variants.py debian"
layer_of() { "$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["layers"][0]["digest"], s["layers"][0]["size"], s["layers"][0]["uncompressed_size"])' "$1"; }
read -r _ ALP_CSIZE ALP_USIZE < <(layer_of "$WORK/oci/alpine.json")
read -r _ DEB_CSIZE DEB_USIZE < <(layer_of "$WORK/oci/debian.json")
UNIQ_SIZE=$("$PY" -c 'import json,sys; v=json.load(open(sys.argv[1]))["variants"]; print(max(x["layer_size"] for x in v.values()))' "$RUN/variants-debian.json")

# ---------------------------------------------------------------------------------------------
# 3. Advisory database, registry, service, tokens
# ---------------------------------------------------------------------------------------------
# The repo's feeds: the AlmaLinux 9 demo set, the Debian DSA list and Alpine secdb samples.
# They hold few or no advisories for Alpine 3.20 / Debian 12 packages, so the images have
# (almost) no findings: the benchmark measures the pipeline (pull, analyse, match every
# package against the database, store, serve), not a match count.
ADV_DB="$RUN/advisories.db"
FEEDS=("$ROOT/demo/advisories/almalinux9" "$ROOT/host/advisories/testdata/debian/DSA-list"
  "$ROOT/host/advisories/testdata/alpine/v3.11-main.yaml")
"$BH" db import --quiet --db "$ADV_DB" "${FEEDS[@]}" >"$LOGS/service-latency-db-import.log" 2>&1 ||
  die "bulkhead db import (see $LOGS/service-latency-db-import.log)"

SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
SVC_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOOK="http://127.0.0.1:$SVC_PORT/v1/webhooks/registry"
STORAGE="$RUN/storage"
mkdir -p "$STORAGE"
cat >"$RUN/registry.yml" <<EOF
version: 0.1
log: {level: info, formatter: text}
storage:
  filesystem: {rootdirectory: $STORAGE}
  cache: {blobdescriptor: inmemory}
http:
  addr: 127.0.0.1:0
  secret: bench-service-latency
notifications:
  events: {includereferences: true}
  endpoints:
    - name: bulkhead
      url: $HOOK
      headers: {Authorization: [Bearer $SECRET]}
      timeout: 2s
      threshold: 3
      backoff: 1s
      ignoredmediatypes: [application/octet-stream]
      ignore: {actions: [pull]}
EOF
unset_regvars=()
for v in $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/\1/p'); do unset_regvars+=(-u "$v"); done
setsid env "${unset_regvars[@]}" docker-registry serve "$RUN/registry.yml" >"$RUN/registry.log" 2>&1 </dev/null &
REG_PID=$!
PORT=""
for _ in $(seq 1 200); do
  PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$RUN/registry.log" | sed -n 1p)
  [[ -n $PORT ]] && break
  kill -0 "$REG_PID" 2>/dev/null || die "registry exited (see $RUN/registry.log)"
  sleep 0.05
done
[[ -n $PORT ]] || die "registry did not log its port"
grep -q 'configuring endpoint bulkhead' "$RUN/registry.log" || die "registry did not configure the notification endpoint"
REG="127.0.0.1:$PORT"

# The service: a home of its own (the compiled analyzers are copied from and back to
# $WORK/service-components, so only the first run compiles them), SQLite store, 2 workers.
SVC_HOME="$RUN/home"
mkdir -p "$SVC_HOME/components" "$WORK/service-components"
cp -a "$WORK/service-components/." "$SVC_HOME/components/"
cat >"$RUN/serve.toml" <<EOF
[server]
listen = "127.0.0.1:$SVC_PORT"
workers = 2

[store]
kind = "sqlite"
path = "$RUN/service.db"

[[registries]]
name = "local"
url = "http://$REG"
insecure = true
webhook_secret_env = "BENCH_WEBHOOK_SECRET"

[[tenants]]
name = "bench"
owns = [{ registry = "local", prefix = "bench" }]

[[tenants]]
name = "storm"
owns = [{ registry = "local", prefix = "storm" }]

[[tenants]]
name = "burst"
owns = [{ registry = "local", prefix = "burst" }]

[scan]
db = "$ADV_DB"
EOF
export BULKHEAD_HOME="$SVC_HOME" BENCH_WEBHOOK_SECRET="$SECRET"
unset BULKHEAD_CONFIG BULKHEAD_DB
log "starting bulkhead serve (the first run compiles the analyzers: up to a minute)"
setsid env BULKHEAD_LOG=info NO_COLOR=1 "$BH" --config "$RUN/serve.toml" serve >"$RUN/service.log" 2>&1 </dev/null &
SVC_PID=$!
API="http://127.0.0.1:$SVC_PORT"
for _ in $(seq 1 1800); do
  grep -q "listening on http://127.0.0.1:$SVC_PORT" "$RUN/service.log" && break
  kill -0 "$SVC_PID" 2>/dev/null || die "bulkhead serve exited: $(tail -5 "$RUN/service.log")"
  sleep 0.1
done
curl -sf -o /dev/null "$API/readyz" || die "bulkhead serve not ready: $(curl -s "$API/readyz")"
cp -au "$SVC_HOME/components/." "$WORK/service-components/"
for t in bench storm burst; do
  "$BH" --config "$RUN/serve.toml" serve token create --tenant "$t" --role reader --name bench \
    >"$RUN/token-$t" 2>>"$RUN/service.log" || die "serve token create --tenant $t"
done
log "registry at $REG (pid $REG_PID), service at $API (pid $SVC_PID)"

mkdir -p "$RUN/skopeo-cache" /var/lib/containers/cache
SKOPEO_CACHE="$RUN/skopeo-cache"
if ! unshare -m --propagation private true 2>/dev/null; then
  SKOPEO_CACHE=""
  log "cannot unshare a mount namespace: skopeo's blob-info cache is not isolated"
fi
common() { # common REPO LAYOUT VARIANTS TOKEN
  printf '%s\n' --api "$API" --registry "$REG" --registry-log "$RUN/registry.log" --repo "$1" \
    --layout "$2" --variants "$3" --token-file "$RUN/token-$4" --skopeo-cache "$SKOPEO_CACHE" --poll-ms "$POLL_MS"
}

# Warm-up, untimed: push each base image and wait for its scan (uploads the base blobs to
# the registry, loads the page cache, runs the first scans). Also checks the package counts.
for img in alpine debian; do
  tag=$([[ $img == alpine ]] && echo 3.20.3 || echo minbase)
  want=$([[ $img == alpine ]] && echo "$ALP_PKGS" || echo "$DEB_PKGS")
  t0=$(now_us)
  "$PY" - "$WORK/oci/$img" "$tag" "$REG" "$img" "$SKOPEO_CACHE" "$API" "$RUN/token-bench" "$want" <<'EOF' || die "warm-up of $img"
import json, subprocess, sys, time, urllib.request
layout, tag, reg, img, cache, api, token_file, want = sys.argv[1:]
cmd = ["skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:%s:%s" % (layout, tag), "docker://%s/bench/%s:%s" % (reg, img, tag)]
if cache:
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
           'mount --bind "$0" /var/lib/containers/cache && exec skopeo "$@"', cache] + cmd[1:]
subprocess.run(cmd, check=True)
token = open(token_file).read().strip()
for _ in range(3000):
    req = urllib.request.Request("%s/v1/images?repository=bench/%s&tag=%s" % (api, img, tag), headers={"Authorization": "Bearer " + token})
    items = json.load(urllib.request.urlopen(req))["items"]
    if items and items[0]["health"] in ("healthy", "unhealthy"):
        if items[0]["packages"] != int(want):
            sys.exit("bench/%s:%s: %s packages, the package database says %s" % (img, tag, items[0]["packages"], want))
        sys.exit(0)
    if items and items[0]["health"] in ("failed", "unsupported"):
        sys.exit("bench/%s:%s %s: %s" % (img, tag, items[0]["health"], items[0].get("last_error")))
    time.sleep(0.05)
sys.exit("bench/%s:%s not scanned after 150 s" % (img, tag))
EOF
  log "warm-up $img: pushed and scanned in $((($(now_us) - t0) / 1000)) ms"
done

# WAIT_QUIET=1: wait (at most 15 min) until the CPUs have been >= 90 % idle for 10 s.
idle_pct() {
  local a b
  read -ra a < <(sed -n 1p /proc/stat)
  sleep "$1"
  read -ra b < <(sed -n 1p /proc/stat)
  local i tot=0 idle=$((b[4] + b[5] - a[4] - a[5]))
  for ((i = 1; i < ${#b[@]}; i++)); do tot=$((tot + b[i] - a[i])); done
  echo $((tot > 0 ? 100 * idle / tot : 100))
}
if [[ ${WAIT_QUIET:-0} == 1 ]]; then
  deadline=$((SECONDS + 900))
  while :; do
    idle=$(idle_pct 10)
    if ((idle >= 90)); then
      IDLE_NOTE="${idle}% idle over 10 s before measuring (WAIT_QUIET)"
      break
    fi
    if ((SECONDS >= deadline)); then
      IDLE_NOTE="only ${idle}% idle over 10 s before measuring (WAIT_QUIET gave up after 15 min): numbers skewed"
      break
    fi
    log "machine busy (${idle}% idle over 10 s), waiting"
  done
else
  IDLE_NOTE="$(idle_pct 3)% idle over 3 s before measuring"
fi
log "$IDLE_NOTE"
BUSY0=$(awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat)

# ---------------------------------------------------------------------------------------------
# 4. Measurements
# ---------------------------------------------------------------------------------------------
ROWS="$RUN/latency.tsv"
: >"$ROWS"
mapfile -t C < <(common bench/alpine "$RUN/oci-alpine" "$RUN/variants-alpine.json" bench)
"$PY" "$HERE/service-latency.py" latency "${C[@]}" --image alpine --rounds "$ALPINE_ROUNDS" \
  --cache-dir "$SVC_HOME/layers" --expect-packages "$ALP_PKGS" --rows "$ROWS" || die "alpine latency"
mapfile -t C < <(common bench/debian "$RUN/oci-debian" "$RUN/variants-debian.json" bench)
"$PY" "$HERE/service-latency.py" latency "${C[@]}" --image debian --rounds "$DEBIAN_ROUNDS" \
  --cache-dir "$SVC_HOME/layers" --expect-packages "$DEB_PKGS" --rows "$ROWS" || die "debian latency"

if [[ ${SKIP_STORM:-0} != 1 ]]; then
  # Two storms, each starting with an empty layer cache (the service must fetch the base
  # layer at least once). skopeo: STORM_PARALLEL skopeo copy at once into storm/debian;
  # skopeo's blob-info cache knows the base blob from bench/debian and mounts it instead of
  # uploading it again (as a CI pushing rebuilt images to one registry would). burst: the same
  # kind of images with their blobs staged in burst/debian first, then only the manifest
  # PUTs: the rate the service sustains without skopeo's own cost.
  mapfile -t C < <(common storm/debian "$RUN/oci-debian" "$RUN/variants-debian.json" storm)
  # PROFILE=1: the service under `perf record` during both storms.
  PERF_PID=""
  if [[ ${PROFILE:-0} == 1 ]]; then
    if command -v perf >/dev/null 2>&1; then
      perf record -q -F 999 -p "$SVC_PID" -o "$RUN/perf.data" >"$LOGS/service-latency-perf-record.log" 2>&1 &
      PERF_PID=$!
      sleep 0.5
    else
      log "PROFILE=1 but no perf (apt-get install linux-perf)"
    fi
  fi
  "$PY" "$HERE/service-latency.py" storm "${C[@]}" --count "$STORM" --parallel "$STORM_PARALLEL" \
    --burst-repo burst/debian --burst-token-file "$RUN/token-burst" --mount-from bench/debian \
    --cache-dir "$SVC_HOME/layers" --expect-packages "$DEB_PKGS" --service-pid "$SVC_PID" \
    --registry-pid "$REG_PID" --decompressor "$DEC" --work "$RUN" --rows "$RUN/storm.json" || die "storm"
  if [[ -n $PERF_PID ]]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" || true
    perf report -i "$RUN/perf.data" --no-children --sort comm,dso,symbol --stdio -g none \
      >"$LOGS/service-latency-perf.txt" 2>/dev/null || log "perf report failed"
  fi
fi
BUSY1=$(awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat)
CPU_NOTE=$(awk -v a="$BUSY0" -v b="$BUSY1" 'BEGIN {split(a, x, " "); split(b, y, " ");
  printf "%.0f%% of both CPUs busy (all processes, this benchmark included)", 100 * (y[1] - x[1]) / (y[2] - x[2])}')
grep -E ' (ERROR|WARN) ' "$RUN/service.log" | head -5 >"$RUN/service-warnings" || true

# ---------------------------------------------------------------------------------------------
# 5. Report
# ---------------------------------------------------------------------------------------------
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)
pkgver() { dpkg-query -W -f '${Package} ${Version}' "$1" 2>/dev/null || echo "$1 (not a dpkg package)"; }
{
  echo "# bench/service-latency.sh — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "machine: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr);" \
    "load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "CPU: $IDLE_NOTE; during the measurements $CPU_NOTE"
  echo "bulkhead: $BH_VERSION (binary sha256 $BH_SHA…); serve: SQLite store, 2 workers, layer cache on"
  tools=""
  for p in docker-registry skopeo curl isal pigz gzip; do tools+="$(pkgver "$p"), "; done
  echo "tools (Debian packages): ${tools%, }; floor decompressor: $DEC -dc"
  echo "advisory db: bulkhead db import ${FEEDS[*]#"$ROOT/"} (few or no advisories for these"
  echo "  images' releases: findings ~0; the pipeline, not the match count, is measured)"
  echo "images: alpine = Alpine 3.20.3 minirootfs, 1 layer $ALP_CSIZE B gzip ($ALP_USIZE B tar), $ALP_PKGS apk packages;"
  echo "  debian = mmdebstrap --variant=minbase bookworm (Debian $DEB_VERSION), 1 layer $DEB_CSIZE B gzip ($DEB_USIZE B tar),"
  echo "  $DEB_PKGS dpkg packages; every pushed image = base + 1 unique layer (<= $UNIQ_SIZE B gzip), a new digest"
  echo
  "$PY" "$HERE/service-latency.py" latency-report --rows "$ROWS" --poll-ms "$POLL_MS"
  if [[ -s $RUN/storm.json ]]; then
    echo
    "$PY" "$HERE/service-latency.py" storm-report --rows "$RUN/storm.json" --decompressor "$DEC"
  fi
  if [[ -s $LOGS/service-latency-perf.txt && ${PROFILE:-0} == 1 ]]; then
    echo
    echo "perf profile of the service during both storms (perf record -F 999 -p; top 20 of its CPU samples):"
    awk '/%/ && n++ < 20 {sub(/[ -]+$/, ""); print}' "$LOGS/service-latency-perf.txt"
  fi
  if [[ -s $RUN/service-warnings ]]; then
    echo
    echo "service log warnings (first 5):"
    cat "$RUN/service-warnings"
  fi
  echo
  echo "total run time $((SECONDS - T_START)) s"
} >"$RUN/results.txt"
mkdir -p "$(dirname "$RESULTS")"
cp "$RUN/results.txt" "$RESULTS"
cp "$ROWS" "$LOGS/service-latency-rounds.tsv"
[[ -s $RUN/storm.json ]] && cp "$RUN/storm.json" "$LOGS/service-latency-storm.json"
cat "$RESULTS"
log "written $RESULTS (raw: $LOGS/service-latency-rounds.tsv, logs: $LOGS/service-latency-*.log)"
