#!/usr/bin/env bash
# Image-scan benchmark (issue "Images", item 9): `bulkhead scan` of real images from a local
# registry, against a floor measured in the same run. See bench/README.md.
#
#   bench/image-scan.sh   # ~1.5 min with images cached; the first run adds ~1.5 min of
#                         # mmdebstrap and packing
#
# Images (built once, cached under target/bench/):
#   debian  Debian bookworm minbase (mmdebstrap), ONE gzip -6 layer
#   big     the Debian layer + 3 layers of random files (1 GiB uncompressed, incompressible)
# For each image, ROUNDS rounds (default 5), alternating the order of floor and scan:
#   floor   GET manifest + config, then every layer blob `curl | <fastest gunzip> >/dev/null`
#           (sequential; for multi-layer images also all layers at once, the faster counts)
#   cold    `bulkhead scan` with the layer cache emptied (compiled analyzers kept warm)
#   warm    the same scan again, every layer from the cache; wall time end to end
# Also informational: the floor plus sha256 of the blob and of the tar ("verified floor"),
# i.e. the work a scanner that checks digests and diff_ids cannot avoid, as bulkhead does.
# Targets: cold <= 1.3 x floor, warm <= 50 ms, peak RSS <= 150 MiB. They are reported,
# not asserted: the exit status is non-zero only when something broke (a tool, the registry,
# a scan that failed, or a report that is incomplete or lists other packages than dpkg-query).
#
# Env knobs: WAIT_QUIET=1 (wait for an idle machine first), PROFILE=1 (perf profile of one
# cold scan per image), ROUNDS (5), BIG_ROUNDS (=ROUNDS), SKIP_BIG=1, BULKHEAD (binary,
# default target/release/bulkhead), BENCH_WORK (target/bench), FORCE_MMDEBSTRAP=1,
# FORCE_PACK=1, RESULTS (bench/results/image-scan.txt).
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME and printf need '.' as the decimal separator

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${BENCH_WORK:-$ROOT/target/bench}
BULKHEAD_SRC=${BULKHEAD:-$ROOT/target/release/bulkhead}
ROUNDS=${ROUNDS:-5}
BIG_ROUNDS=${BIG_ROUNDS:-$ROUNDS}
SKIP_BIG=${SKIP_BIG:-0}
RESULTS=${RESULTS:-$HERE/results/image-scan.txt}
BIG_LAYERS=("random:384M:seed=1" "random:320M:seed=2" "random:320M:seed=3")
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

RUN="$WORK/run.$$"
LOGS="$WORK/logs"
DATA="$RUN/data.tsv" # image  round  metric  value
mkdir -p "$WORK" "$LOGS" "$RUN"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
REG_PID=""
cleanup() {
  local rc=$? st=""
  if [[ -n $REG_PID ]]; then
    kill -TERM "$REG_PID" 2>/dev/null || true
    # Gone, or a zombie waiting to be reaped (kill -0 still succeeds on a zombie).
    for _ in $(seq 1 40); do
      st=$(ps -o stat= -p "$REG_PID" 2>/dev/null || true)
      [[ -z $st || $st == Z* ]] && break
      sleep 0.05
    done
    if [[ -n $st && $st != Z* ]]; then kill -KILL "$REG_PID" 2>/dev/null || true; fi
  fi
  rm -rf "$RUN"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[image-scan %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}
now_us() { printf '%s' "${EPOCHREALTIME/./}"; }

# ---------------------------------------------------------------------------------------------
# 1. Tools
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
  [skopeo]=skopeo [curl]=curl [/usr/bin/time]=time [dpkg-query]=dpkg [sha256sum]=coreutils)
for cmd in "${!PKG_OF[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${PKG_OF[$cmd]}")
done
if ((${#need[@]})); then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  apt_install "${need[@]}" || die "apt-get install ${need[*]} (see $LOGS/apt.log)"
fi
# The fast decompressors are optional: without them the floor uses plain gzip.
command -v igzip >/dev/null 2>&1 || apt_install isal || log "isal (igzip) unavailable"
command -v pigz >/dev/null 2>&1 || apt_install pigz || log "pigz unavailable"

# The binary under test. Someone else may be rebuilding it: wait until it runs, then
# benchmark a private copy so that a rebuild during the run cannot mix two versions.
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
DEB_DIR="$WORK/debian"
DEB_TAR="$DEB_DIR/bookworm-minbase.tar"
mkdir -p "$DEB_DIR"
if [[ ! -s $DEB_TAR || ${FORCE_MMDEBSTRAP:-0} == 1 ]]; then
  log "mmdebstrap --variant=minbase bookworm (about a minute)"
  mkdir -p "$WORK/tmp"
  t0=$(now_us)
  # mmdebstrap's scratch space defaults to /tmp; keep it with our other files.
  TMPDIR="$WORK/tmp" mmdebstrap --variant=minbase bookworm "$DEB_DIR/raw.tar" >"$LOGS/mmdebstrap.log" 2>&1 ||
    die "mmdebstrap (see $LOGS/mmdebstrap.log)"
  # Root mode puts device nodes in the tar; an image layer has none.
  mmtarfilter --path-exclude='/dev/*' <"$DEB_DIR/raw.tar" >"$DEB_TAR.tmp" || die "mmtarfilter"
  mv "$DEB_TAR.tmp" "$DEB_TAR"
  rm -f "$DEB_DIR/raw.tar"
  log "mmdebstrap done in $((($(now_us) - t0) / 1000000)) s"
fi

# Reference package count, from the rootfs itself with dpkg's own tool.
REF="$DEB_DIR/ref"
rm -rf "$REF" && mkdir -p "$REF"
tar -xf "$DEB_TAR" -C "$REF" ./var/lib/dpkg/status || die "no ./var/lib/dpkg/status in $DEB_TAR"
mkdir -p "$REF/var/lib/dpkg/info" "$REF/var/lib/dpkg/updates"
DPKG_ALL=$(dpkg-query --admindir="$REF/var/lib/dpkg" -W | wc -l)
# What the scan must report: the installed packages, as name, version and architecture.
dpkg-query --admindir="$REF/var/lib/dpkg" -W -f '${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n' |
  awk -F'\t' '$1 ~ /^ii/ {print $2 "\t" $3 "\t" $4}' | sort >"$DEB_DIR/expected-packages.tsv"
DPKG_INSTALLED=$(wc -l <"$DEB_DIR/expected-packages.tsv")
DEB_VERSION=$(tar -xOf "$DEB_TAR" ./etc/debian_version 2>/dev/null || echo '?')
log "rootfs: Debian $DEB_VERSION, dpkg-query -W: $DPKG_ALL packages ($DPKG_INSTALLED installed)"

# pack NAME TAG LAYER... : OCI layout $WORK/oci/NAME, rebuilt only when an input changed.
pack() {
  local name=$1 tag=$2
  shift 2
  local dir="$WORK/oci/$name" key
  key=$(
    sha256sum "$HERE/oci-pack.py" | cut -d' ' -f1
    stat -c '%s %Y' "$DEB_TAR"
    printf '%s\n' "$tag" "$@"
  )
  if [[ ${FORCE_PACK:-0} != 1 && -s "$dir.json" && "$(cat "$dir.stamp" 2>/dev/null)" == "$key" ]]; then
    return
  fi
  log "packing $name ($*)"
  rm -rf "$dir" "$dir.json" "$dir.stamp"
  local t0
  t0=$(now_us)
  "$PY" "$HERE/oci-pack.py" "$dir" --tag "$tag" "$@" >"$dir.json.tmp" 2>"$LOGS/pack-$name.log" ||
    die "oci-pack.py $name (see $LOGS/pack-$name.log)"
  mv "$dir.json.tmp" "$dir.json"
  printf '%s' "$key" >"$dir.stamp"
  log "packed $name in $((($(now_us) - t0) / 1000000)) s"
}
mkdir -p "$WORK/oci"
IMAGES=(debian)
pack debian minbase "tar:$DEB_TAR"
if [[ $SKIP_BIG != 1 ]]; then
  IMAGES+=(big)
  pack big 1g "tar:$DEB_TAR" "${BIG_LAYERS[@]}"
fi

declare -A TAG=([debian]=minbase [big]=1g) ROUNDS_OF=([debian]=$ROUNDS [big]=$BIG_ROUNDS)
declare -A CONFIG LAYERS DIFFS CSIZE USIZE NLAYERS
for img in "${IMAGES[@]}"; do
  # One line each: manifest (unused), config, layer digests, diff_ids, compressed, uncompressed, count.
  mapfile -t f < <("$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["manifest"]["digest"]); print(s["config"]["digest"])
print(" ".join(l["digest"] for l in s["layers"])); print(" ".join(l["diff_id"] for l in s["layers"]))
print(s["compressed_bytes"]); print(s["uncompressed_bytes"]); print(len(s["layers"]))' "$WORK/oci/$img.json")
  CONFIG[$img]=${f[1]} LAYERS[$img]=${f[2]} DIFFS[$img]=${f[3]}
  CSIZE[$img]=${f[4]} USIZE[$img]=${f[5]} NLAYERS[$img]=${f[6]}
done

# WAIT_QUIET=1: wait (at most 15 min) until the CPUs have been >= 90 % idle for 10 s, because
# other work on a 2-core machine inflates the scan more than the floor.
idle_pct() { # idle share of all CPUs over $1 seconds, from /proc/stat
  local a b
  read -ra a < <(sed -n 1p /proc/stat)
  sleep "$1"
  read -ra b < <(sed -n 1p /proc/stat)
  local i tot=0 idle=$((b[4] + b[5] - a[4] - a[5]))
  for ((i = 1; i < ${#b[@]}; i++)); do tot=$((tot + b[i] - a[i])); done
  echo $((tot > 0 ? 100 * idle / tot : 100))
}
if [[ ${WAIT_QUIET:-0} == 1 ]]; then
  waited=$SECONDS
  deadline=$((SECONDS + 900))
  while :; do
    idle=$(idle_pct 10)
    if ((idle >= 90)); then
      IDLE_NOTE="${idle}% idle over 10 s before measuring (WAIT_QUIET: waited $((SECONDS - waited)) s)"
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

# The fastest gzip decompressor on this machine, measured on the Debian layer (best of 3).
DEB_BLOB="$WORK/oci/debian/blobs/sha256/${LAYERS[debian]#sha256:}"
DEC="" DEC_MS="" CALIB=""
for d in igzip pigz gzip; do
  command -v "$d" >/dev/null 2>&1 || continue
  best=""
  for _ in 1 2 3; do
    t0=$(now_us)
    "$d" -dc <"$DEB_BLOB" >/dev/null || die "$d -dc failed on $DEB_BLOB"
    ms=$((($(now_us) - t0) / 1000))
    [[ -z $best || $ms -lt $best ]] && best=$ms
  done
  CALIB+="$d ${best}ms  "
  if [[ -z $DEC || $best -lt $DEC_MS ]]; then DEC=$d DEC_MS=$best; fi
done
log "decompressors on the Debian layer: $CALIB-> floor uses '$DEC -dc'"
# sha256 for the verified floor: openssl uses the CPU's SHA extensions, coreutils does not.
SHA=(sha256sum)
if command -v openssl >/dev/null 2>&1 && [[ $(printf abc | openssl dgst -sha256 -r 2>/dev/null) == ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad* ]]; then
  SHA=(openssl dgst -sha256 -r)
fi

# ---------------------------------------------------------------------------------------------
# 3. Registry
# ---------------------------------------------------------------------------------------------
STORAGE=$(mktemp -d "$RUN/storage.XXXXXX")

cat >"$RUN/registry.yml" <<EOF
version: 0.1
log: {level: info, formatter: text}
storage:
  filesystem: {rootdirectory: $STORAGE}
  cache: {blobdescriptor: inmemory}
http:
  addr: 127.0.0.1:0
  secret: bench-image-scan
EOF
# REGISTRY_* variables would override the file (e.g. move the listener).
unset_regvars=()
for v in $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/\1/p'); do unset_regvars+=(-u "$v"); done
setsid env "${unset_regvars[@]}" docker-registry serve "$RUN/registry.yml" >"$LOGS/registry.log" 2>&1 </dev/null &
REG_PID=$!
PORT=""
for _ in $(seq 1 200); do
  PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOGS/registry.log" | sed -n 1p)
  [[ -n $PORT ]] && break
  kill -0 "$REG_PID" 2>/dev/null || die "registry exited (see $LOGS/registry.log)"
  sleep 0.05
done
[[ -n $PORT ]] || die "registry did not log its port (see $LOGS/registry.log)"
REG="127.0.0.1:$PORT"
URL="http://$REG"
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$URL/v2/" && break
  sleep 0.05
done
curl -sf -o /dev/null "$URL/v2/" || die "registry at $REG does not answer /v2/"
log "registry at $REG (pid $REG_PID)"

# skopeo keeps a blob-info cache in /var/lib/containers/cache that outlives registries and
# makes it probe and mount blobs it remembers from earlier runs. Run it in a private mount
# namespace with that directory bind-mounted from our run dir.
SKOPEO_ISOLATED=yes
mkdir -p "$RUN/skopeo-cache" /var/lib/containers/cache
skopeo_isolated() {
  if [[ $SKOPEO_ISOLATED == yes ]]; then
    # shellcheck disable=SC2016 # $0 and $@ are for the inner sh
    unshare -m --propagation private sh -c \
      'mount --bind "$0" /var/lib/containers/cache && exec skopeo "$@"' "$RUN/skopeo-cache" "$@"
  else
    skopeo "$@"
  fi
}
if ! unshare -m --propagation private true 2>/dev/null; then
  SKOPEO_ISOLATED="no (unshare -m unavailable)"
  log "cannot unshare a mount namespace: skopeo's blob-info cache is not isolated"
fi
declare -A PUSH_MS
for img in "${IMAGES[@]}"; do
  t0=$(now_us)
  skopeo_isolated copy -q --dest-tls-verify=false "oci:$WORK/oci/$img:${TAG[$img]}" \
    "docker://$REG/bench/$img:${TAG[$img]}" >"$LOGS/push-$img.log" 2>&1 ||
    die "skopeo push of $img (see $LOGS/push-$img.log)"
  PUSH_MS[$img]=$((($(now_us) - t0) / 1000))
  log "pushed $img in ${PUSH_MS[$img]} ms"
done

# ---------------------------------------------------------------------------------------------
# 4. Measurements
# ---------------------------------------------------------------------------------------------
ACCEPT="application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"
export BULKHEAD_HOME="$WORK/home"
unset BULKHEAD_CONFIG BULKHEAD_USERNAME BULKHEAD_PASSWORD
mkdir -p "$BULKHEAD_HOME"
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$DATA"; }

# floor IMG MODE -> elapsed µs on stdout. MODE: seq | par | verify.
floor() {
  local img=$1 mode=$2 repo="bench/$1" d i=0 t0 t1
  local -a pids=() diffs
  read -ra diffs <<<"${DIFFS[$img]}"
  t0=$(now_us)
  curl -sSf -o /dev/null -H "Accept: $ACCEPT" "$URL/v2/$repo/manifests/${TAG[$img]}" || return 1
  curl -sSf -o /dev/null "$URL/v2/$repo/blobs/${CONFIG[$img]}" || return 1
  for d in ${LAYERS[$img]}; do
    case $mode in
    seq) curl -sSf "$URL/v2/$repo/blobs/$d" | "$DEC" -dc >/dev/null || return 1 ;;
    par)
      curl -sSf "$URL/v2/$repo/blobs/$d" | "$DEC" -dc >/dev/null &
      pids+=($!)
      ;;
    verify)
      # Both digests, as a verifying scanner must compute them; checked after the clock.
      # All layers at once, like `par`. The blob's own hash reads a FIFO that tee feeds.
      rm -f "$RUN/fifo.$i" && mkfifo "$RUN/fifo.$i"
      "${SHA[@]}" <"$RUN/fifo.$i" >"$RUN/c.$i" &
      pids+=($!)
      curl -sSf "$URL/v2/$repo/blobs/$d" | tee "$RUN/fifo.$i" | "$DEC" -dc | "${SHA[@]}" >"$RUN/u.$i" &
      pids+=($!)
      ;;
    esac
    i=$((i + 1))
  done
  for p in "${pids[@]}"; do wait "$p" || return 1; done
  t1=$(now_us)
  if [[ $mode == verify ]]; then
    i=0
    for d in ${LAYERS[$img]}; do
      [[ "sha256:$(cut -d' ' -f1 "$RUN/c.$i")" == "$d" ]] || { log "blob $d: digest mismatch"; return 1; }
      [[ "sha256:$(cut -d' ' -f1 "$RUN/u.$i")" == "${diffs[$i]}" ]] || { log "blob $d: diff_id mismatch"; return 1; }
      i=$((i + 1))
    done
  fi
  echo $((t1 - t0))
}

# check REPORT WANT(cold|warm) IMG -> "packages duration_ms downloaded from_cache"; fails if
# the report is incomplete, its packages differ from dpkg-query's (name, version, arch), its
# byte counts from the image's, or it took layers from the wrong place.
check() {
  "$PY" - "$@" "$DEB_DIR/expected-packages.tsv" "${NLAYERS[$3]}" "${CSIZE[$3]}" "${USIZE[$3]}" <<'EOF'
import json, sys
path, want, img, ref = sys.argv[1:5]
nlayers, csize, usize = (int(a) for a in sys.argv[5:8])
expected = {tuple(l.rstrip("\n").split("\t")) for l in open(ref) if l.strip()}
r = json.load(open(path))
s = r.get("stats", {})
pkgs = r.get("packages", [])
got = [(p.get("name"), p.get("version"), p.get("arch")) for p in pkgs if p.get("ecosystem") == "deb"]
errs = []
if r.get("complete") is not True:
    errs.append("report not complete")
if len(pkgs) != len(expected) or set(got) != expected or len(got) != len(set(got)):
    missing, extra = sorted(expected - set(got)), sorted(set(got) - expected)
    errs.append("%d packages (%d deb), dpkg-query says %d; missing %s; unexpected %s"
                % (len(pkgs), len(got), len(expected), missing[:5], extra[:5]))
if want == "cold" and (s.get("compressed_bytes"), s.get("uncompressed_bytes")) != (csize, usize):
    errs.append("stats bytes %r/%r, image has %d/%d"
                % (s.get("compressed_bytes"), s.get("uncompressed_bytes"), csize, usize))
if s.get("layers") != nlayers:
    errs.append("stats.layers %r, image has %d" % (s.get("layers"), nlayers))
if want == "cold" and s.get("layers_downloaded") != nlayers:
    errs.append("cold scan downloaded %r of %d layers" % (s.get("layers_downloaded"), nlayers))
if want == "warm" and s.get("layers_from_cache") != nlayers:
    errs.append("warm scan took %r of %d layers from the cache" % (s.get("layers_from_cache"), nlayers))
if errs:
    sys.exit("%s (%s scan of %s): %s" % (path, want, img, "; ".join(errs)))
print(len(pkgs), s.get("duration_ms"), s.get("layers_downloaded"), s.get("layers_from_cache"))
EOF
}

# scan IMG KIND(cold|warm|warm-bare) ROUND
scan() {
  local img=$1 kind=$2 round=$3 t0 t1 out="$RUN/report-$1-$2.json" tf="$RUN/time"
  local -a cmd=("$BH" scan "$REG/bench/$img:${TAG[$img]}" --insecure-registry "$REG" --format json -o "$out" --quiet)
  [[ $kind == cold ]] && rm -rf "$BULKHEAD_HOME/layers"
  rm -f "$out"
  if [[ $kind == warm-bare ]]; then
    # Nothing between the clock reads but the process itself.
    t0=$(now_us)
    "${cmd[@]}" 2>"$RUN/stderr" || { cat "$RUN/stderr" >&2; die "$kind scan of $img, round $round"; }
    t1=$(now_us)
  else
    t0=$(now_us)
    /usr/bin/time -f '%e %M' -o "$tf" "${cmd[@]}" 2>"$RUN/stderr" || {
      cat "$RUN/stderr" >&2
      die "$kind scan of $img, round $round"
    }
    t1=$(now_us)
    read -r _ rss <"$tf"
    record "$img" "$round" "rss_$kind" "$rss"
  fi
  local c
  c=$(check "$out" "${kind%-bare}" "$img") || die "bad report"
  read -r pkgs dur _ _ <<<"$c"
  record "$img" "$round" "wall_$kind" "$((t1 - t0))"
  record "$img" "$round" "stats_$kind" "$dur"
  record "$img" "$round" "pkgs" "$pkgs"
}

# CPU used by processes other than this benchmark during the rounds: all busy time from
# /proc/stat minus our children (scans, curl, decompressors: `times`) and the registry.
HZ=$(getconf CLK_TCK)
# Sets OTHERS_TICKS. Not to be called in $(...): a subshell's `times` knows no children.
cpu_others_ticks() {
  local busy ours reg
  busy=$(awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8}' /proc/stat)
  times >"$RUN/times"
  ours=$(awk -v hz="$HZ" 'NR == 2 {
    for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] } } END {printf "%d", s * hz}' "$RUN/times")
  reg=$(awk '{print $14 + $15}' "/proc/$REG_PID/stat" 2>/dev/null || echo 0)
  OTHERS_TICKS=$((busy - ours - reg))
}
cpu_others_ticks
OTHERS_T0=$OTHERS_TICKS
ROUNDS_T0=$SECONDS
: >"$DATA"
for img in "${IMAGES[@]}"; do
  # Warm-up, not recorded: page cache for the registry's blobs, compiled analyzers in
  # $BULKHEAD_HOME/components, and a first check that the scan works at all.
  log "$img: warm-up"
  floor "$img" seq >/dev/null || die "floor of $img"
  scan "$img" cold 0
  modes=(seq verify)
  ((NLAYERS[$img] > 1)) && modes+=(par)
  for round in $(seq 1 "${ROUNDS_OF[$img]}"); do
    do_floor() {
      local m us
      for m in "${modes[@]}"; do
        us=$(floor "$img" "$m") || die "floor ($m) of $img, round $round"
        record "$img" "$round" "floor_$m" "$us"
      done
    }
    # Alternate which goes first, so neither always gets the warmer caches.
    ((round % 2)) && do_floor
    scan "$img" cold "$round"
    scan "$img" warm-bare "$round"
    scan "$img" warm "$round"
    ((round % 2)) || do_floor
    log "$img round $round/${ROUNDS_OF[$img]}: $(awk -F'\t' -v i="$img" -v r="$round" \
      '$1==i && $2==r && $3 !~ /^(pkgs|stats)/ {printf "%s=%s ", $3, ($3 ~ /^rss/ ? int($4/1024) "MiB" : int($4/1000) "ms")}' "$DATA")"
  done
done

cpu_others_ticks
OTHERS_CPU=$(awk -v t="$((OTHERS_TICKS - OTHERS_T0))" -v hz="$HZ" -v wall="$((SECONDS - ROUNDS_T0))" -v n="$(nproc)" \
  'BEGIN {s = t / hz; if (s < 0) s = 0; printf "%.1f CPU-s in %d s (%.0f%% of the machine)", s, wall, wall ? 100 * s / (wall * n) : 0}')

# One more cold scan of the Debian image with -vv, kept for "where does the time go".
rm -rf "$BULKHEAD_HOME/layers"
NO_COLOR=1 "$BH" -vv scan "$REG/bench/debian:minbase" --insecure-registry "$REG" --format json \
  -o "$RUN/vv.json" 2>"$LOGS/debian-cold-vv.log" || log "the -vv scan failed (see $LOGS/debian-cold-vv.log)"
# PROFILE=1: and one cold scan of each image under `perf record`: CPU samples per thread and
# symbol (tid:comm; threads of one process share the comm).
PROFILE_TXT=""
if [[ ${PROFILE:-0} == 1 ]]; then
  if command -v perf >/dev/null 2>&1; then
    for img in "${IMAGES[@]}"; do
      rm -rf "$BULKHEAD_HOME/layers"
      if perf record -q -F 4999 -o "$RUN/perf.data" "$BH" scan "$REG/bench/$img:${TAG[$img]}" --insecure-registry "$REG" \
        --format json -o "$RUN/perf.json" --quiet >/dev/null 2>"$LOGS/perf-record.log"; then
        perf report -i "$RUN/perf.data" --no-children --sort pid,symbol --stdio -g none >"$LOGS/$img-cold-perf.txt" 2>/dev/null || true
        PROFILE_TXT+=$'\n'"perf profile of one cold scan of $img (perf record -F 4999; top 15 of all CPU samples):"$'\n'
        PROFILE_TXT+=$(awk '/%/ && n++ < 15 {sub(/[ -]+$/, ""); print}' "$LOGS/$img-cold-perf.txt")$'\n'
      else
        log "perf record failed (see $LOGS/perf-record.log)"
      fi
    done
  else
    log "PROFILE=1 but no perf (apt-get install linux-perf)"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 5. Report
# ---------------------------------------------------------------------------------------------
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)
pkgver() { dpkg-query -W -f '${Package} ${Version}' "$1" 2>/dev/null || echo "$1 (not a dpkg package)"; }
{
  echo "# bench/image-scan.sh — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "machine: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr);" \
    "load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "CPU: $IDLE_NOTE; during the rounds, other processes used $OTHERS_CPU"
  echo "bulkhead: $BH_VERSION (binary sha256 $BH_SHA…)"
  tools=""
  for p in docker-registry skopeo mmdebstrap curl time isal pigz gzip openssl coreutils; do tools+="$(pkgver "$p"), "; done
  echo "tools (Debian packages): ${tools%, }; python $("$PY" -c 'import platform; print(platform.python_version())')"
  echo "decompressors (Debian layer, best of 3): $CALIB-> floor uses '$DEC -dc'"
  echo "verified floor hashes with: ${SHA[*]}; skopeo blob-info cache isolated: $SKOPEO_ISOLATED"
  echo "rootfs: mmdebstrap --variant=minbase bookworm, Debian $DEB_VERSION; dpkg-query -W: $DPKG_ALL packages, $DPKG_INSTALLED installed"
  for img in "${IMAGES[@]}"; do
    printf 'image %-6s %d layer(s), %s B compressed, %s B uncompressed, pushed in %s ms, %s rounds\n' \
      "$img" "${NLAYERS[$img]}" "${CSIZE[$img]}" "${USIZE[$img]}" "${PUSH_MS[$img]}" "${ROUNDS_OF[$img]}"
  done
  echo
  "$PY" - "$DATA" "${IMAGES[@]}" <<'EOF'
import statistics, sys
from collections import defaultdict
path, images = sys.argv[1], sys.argv[2:]
d = defaultdict(lambda: defaultdict(dict))
for line in open(path):
    img, rnd, metric, val = line.rstrip("\n").split("\t")
    if rnd == "0":
        continue  # warm-up
    d[img][metric][int(rnd)] = float(val) if val not in ("", "None") else float("nan")
med = lambda img, m: statistics.median(d[img][m].values()) if d[img].get(m) else float("nan")
rows = []
for img in images:
    floors = [m for m in ("floor_seq", "floor_par") if m in d[img]]
    # Per round, the floor is the faster of the sequential and the parallel fetch.
    per_round = {r: min(d[img][m][r] for m in floors) for r in d[img][floors[0]]}
    d[img]["floor"] = per_round
    floor = med(img, "floor") / 1e3
    cold = med(img, "wall_cold") / 1e3
    warm = med(img, "wall_warm-bare") / 1e3
    rows.append((img, floor, med(img, "floor_verify") / 1e3, cold, med(img, "stats_cold"), cold / floor,
                 warm, med(img, "stats_warm"), med(img, "rss_cold") / 1024, med(img, "rss_warm") / 1024,
                 int(med(img, "pkgs"))))
print("medians (ms, MiB)  floor: curl | gunzip of every blob + manifest/config GETs;  verified: the same"
      " plus sha256 of blob and tar;\n  cold/warm: wall time of the bulkhead process (its stats.duration_ms in"
      " parentheses); RSS: peak resident set")
hdr = ("image", "floor", "verified", "cold (stats)", "cold/floor", "warm (stats)", "RSS cold", "RSS warm", "pkgs")
fmt = "%-7s %8s %9s %14s %11s %13s %9s %9s %5s"
print(fmt % hdr)
for img, fl, ver, cold, cs, ratio, warm, ws, rc, rw, pk in rows:
    print(fmt % (img, "%.0f" % fl, "%.0f" % ver, "%.0f (%.0f)" % (cold, cs), "%.2f" % ratio,
                 "%.1f (%.0f)" % (warm, ws), "%.0f" % rc, "%.0f" % rw, pk))
print("targets: cold/floor <= 1.30, warm <= 50 ms, RSS <= 150 MiB")
for img, fl, ver, cold, cs, ratio, warm, ws, rc, rw, pk in rows:
    verdict = lambda ok: "met" if ok else "MISSED"
    print("  %-7s cold/floor %.2f %s; warm %.1f ms %s; RSS %.0f/%.0f MiB %s" % (
        img, ratio, verdict(ratio <= 1.3), warm, verdict(warm <= 50), rc, rw, verdict(max(rc, rw) <= 150)))
print("\nper round (ms; RSS MiB):")
for img in images:
    for m in sorted(d[img]):
        vals = d[img][m]
        scale = 1024 if m.startswith("rss") else (1 if m.startswith("stats") or m == "pkgs" else 1e3)
        print("  %-7s %-15s %s" % (img, m, " ".join("%.1f" % (vals[r] / scale) for r in sorted(vals))))
EOF
  printf '%s' "$PROFILE_TXT"
} >"$RUN/results.txt"
mkdir -p "$(dirname "$RESULTS")"
cp "$RUN/results.txt" "$RESULTS"
cp "$DATA" "$LOGS/image-scan-rounds.tsv"
cat "$RESULTS"
log "written $RESULTS (raw rounds: $LOGS/image-scan-rounds.tsv, -vv log: $LOGS/debian-cold-vv.log)"
