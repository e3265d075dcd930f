#!/usr/bin/env bash
# The gateway benchmark behind docs/benchmarks.md. One command:
#
#   bench/run.sh
#
# Builds in release (into target/bench, apart from the debug builds), starts the fake
# Gemini upstream (examples/bench_upstream.rs: a ~1.5 MB 1024² PNG or a 2048² JPEG,
# base64 in Google's JSON, served from memory after a configurable delay) and imagegate in
# front of it, and drives both with wrk from its own process. Everything listens on
# 127.0.0.1 only, and every load run is bounded by a duration or a request count.
# Takes about 8 minutes after the build on 2 cores.
#
# Settings (environment): BENCH_DURATION (seconds per throughput run, default 15),
# BENCH_UPSTREAM_PORT (18080), BENCH_GATEWAY_PORT (18000), BENCH_WEBHOOK_PORT (18090),
# BENCH_EXTRA_CONFIG (TOML appended to imagegate's configuration), BENCH_OUT (where the
# raw results and report.md go; default target/bench/results), BENCH_PHASES (which phases
# to run, of: throughput openai growth held async hostile imaging; default all of them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-15}
UPSTREAM_PORT=${BENCH_UPSTREAM_PORT:-18080}
GATEWAY_PORT=${BENCH_GATEWAY_PORT:-18000}
WEBHOOK_PORT=${BENCH_WEBHOOK_PORT:-18090}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/results}
BIN=$CARGO_TARGET_DIR/release
UPSTREAM=http://127.0.0.1:$UPSTREAM_PORT
GATEWAY=http://127.0.0.1:$GATEWAY_PORT

say() { printf '== %s\n' "$*" >&2; }
PHASES=" ${BENCH_PHASES:-throughput openai growth held async hostile imaging} "
want() { [[ $PHASES == *" $1 "* ]]; }

# ---- tools -------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  say "installing wrk (Debian)"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
if ! python3 -c 'import numpy, PIL' 2>/dev/null; then
  say "installing numpy and pillow"
  python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
for port in "$UPSTREAM_PORT" "$GATEWAY_PORT" "$WEBHOOK_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; set BENCH_*_PORT" >&2
    exit 1
  fi
done
# 1,000 client connections plus 1,000 upstream connections, and wrk's own.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < 4096)); then
  echo "the open-file limit ($(ulimit -n)) is too low for 1,000 connections in flight" >&2
  exit 1
fi

say "building (release, $CARGO_TARGET_DIR)"
cargo build --release --locked --bin imagegate --example bench_upstream --example bench_async
cargo bench --locked --bench imaging --no-run

WORK=$(mktemp -d /tmp/imagegate-bench.XXXXXX)
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
UPSTREAM_PID=
GATEWAY_PID=
SAMPLER_PID=
cleanup() {
  for pid in $SAMPLER_PID $GATEWAY_PID $UPSTREAM_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

record() { printf '%s\n' "$1" >>"$RESULTS"; }

wait_http() { # URL: up to 30 s for a server to answer
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

upstream() { # reconfigure the fake: upstream image=png delay_ms=0
  local query
  query=$(IFS='&'; echo "$*")
  curl -fsS -X POST "$UPSTREAM/admin/config?reset=true&$query" >/dev/null
}

rss_kb() { awk -v f="$2" '$1 == f":" {print $2}' "/proc/$1/status"; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a - b}'; }
# CPU seconds (user + system, all threads) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
stat_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; } # one number from the fake's /stats

# ---- the fake upstream -------------------------------------------------------------------
say "starting the fake upstream on $UPSTREAM"
"$BIN/examples/bench_upstream" --port "$UPSTREAM_PORT" --save-images "$WORK/images" \
  >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
wait_http "$UPSTREAM/stats"
record "$(curl -fsS "$UPSTREAM/stats" | sed 's/^/{"phase":"upstream","stats":/; s/$/}/')"

# ---- imagegate ---------------------------------------------------------------------------
cat >"$WORK/imagegate.toml" <<EOF
host = "127.0.0.1"
port = $GATEWAY_PORT
provider = "gemini"
data_dir = "$WORK/data"
log_format = "json"
# Not a Google key: the fake accepts anything. It only selects the gemini provider.
google_api_key = "bench-placeholder-not-a-key"

[gemini]
base_url = "$UPSTREAM"
# One attempt: the fake never fails, and a retry would hide a real error.
max_attempts = 1

[auth]
create_first_key = false

# The async row's webhooks go to a receiver on 127.0.0.1, which is refused by default.
[jobs.webhooks]
allow_private = true

# A tier high enough that neither limit shapes the load (the paid tier allows 600
# requests a minute and 5 in flight; these runs make up to ~40,000 a minute and hold
# 1,000 in flight). The benchmark key below belongs to it.
[tiers.bench]
requests_per_minute = 100000000
max_concurrent = 100000
${BENCH_EXTRA_CONFIG:-}
EOF
KEY=$("$BIN/imagegate" keys create --tier bench --name benchmark --config "$WORK/imagegate.toml" 2>/dev/null)

start_gateway() { # [VAR=value...]: extra environment for this gateway process
  rm -rf "$WORK/data/images"
  # info-level logs stay on (one line per request, as deployed), written to a file.
  env "$@" RUST_LOG=info "$BIN/imagegate" serve --config "$WORK/imagegate.toml" >>"$WORK/gateway.log" 2>&1 &
  GATEWAY_PID=$!
  wait_http "$GATEWAY/health"
}

stop_gateway() {
  kill "$GATEWAY_PID"
  wait "$GATEWAY_PID" 2>/dev/null || true
  GATEWAY_PID=
}

# Generated images pile up on disk at up to ~1 GB/s; each run starts with none.
drop_images() { find "$WORK/data/images" -type f -delete 2>/dev/null || true; }

DIRECT_BODY='{"contents":[{"role":"user","parts":[{"text":"A watercolor lighthouse on a cliff at dusk"}]}],"generationConfig":{"responseModalities":["TEXT","IMAGE"]}}'
GATEWAY_BODY='{"prompt":"A watercolor lighthouse on a cliff at dusk"}'
OPENAI_BODY='{"prompt":"A watercolor lighthouse on a cliff at dusk","response_format":"b64_json"}'

# load NAME TARGET(direct|gateway) CONNECTIONS [wrk options...]: one wrk run, one result
# line. With BENCH_REQUESTS set, exactly that many requests, ended as soon as all have
# completed (-d is then only the upper bound).
load() {
  local name=$1 target=$2 connections=$3
  shift 3
  local threads=2 url body key=
  ((connections == 1)) && threads=1
  if [[ $target == direct ]]; then
    url="$UPSTREAM/v1beta/models/gemini-3.1-flash-image:generateContent"
    body=$DIRECT_BODY
  elif [[ $target == openai ]]; then
    url="$GATEWAY/v1/images/generations"
    body=$OPENAI_BODY
    key=$KEY
  else
    url="$GATEWAY/generate-image"
    body=$GATEWAY_BODY
    key=$KEY
  fi
  local done_file=$WORK/wrk.done
  : >"$done_file"
  local gateway_cpu upstream_cpu
  gateway_cpu=$(cpu_s "$GATEWAY_PID")
  upstream_cpu=$(cpu_s "$UPSTREAM_PID")
  BENCH_BODY=$body BENCH_KEY=$key BENCH_THREADS=$threads BENCH_CONNECTIONS=$connections \
    BENCH_DONE_FILE=$done_file \
    wrk -t"$threads" -c"$connections" -s bench/post.lua "$@" "$url" >"$WORK/wrk.out" &
  local wrk_pid=$!
  if [[ -n ${BENCH_REQUESTS:-} ]]; then
    while kill -0 "$wrk_pid" 2>/dev/null && (($(wc -l <"$done_file") < threads)); do
      sleep 0.2
    done
    kill -INT "$wrk_pid" 2>/dev/null || true
  fi
  wait "$wrk_pid"
  local line cpu
  line=$(sed -n 's/^RESULT //p' "$WORK/wrk.out")
  cpu="{\"gateway_s\":$(minus "$(cpu_s "$GATEWAY_PID")" "$gateway_cpu"),\"upstream_s\":$(minus "$(cpu_s "$UPSTREAM_PID")" "$upstream_cpu")}"
  say "$name: $line cpu: $cpu"
  record "{\"phase\":\"$name\",\"target\":\"$target\",\"connections\":$connections,\"wrk\":$line,\"cpu\":$cpu}"
  drop_images
}

start_gateway

# ---- latency and throughput, per payload -------------------------------------------------
if want throughput; then
for image in png jpeg; do
  upstream image=$image delay_ms=0
  say "warm-up ($image)"
  load "warmup-$image" gateway 4 -d 3s >/dev/null
  for c in 1 16 64; do
    for target in direct gateway; do
      load "$image-c$c" "$target" "$c" -d "${DURATION}s" --timeout 10s
    done
  done
done
fi

# ---- the OpenAI surface: the same generation, answered in OpenAI's shape ----------------
if want openai; then
upstream image=png delay_ms=0
load "warmup-openai" openai 4 -d 3s >/dev/null
for c in 1 16 64; do
  load "openai-png-c$c" openai "$c" -d "${DURATION}s" --timeout 10s
done
fi

# ---- memory: no growth over 10,000 requests ------------------------------------------------
if want growth; then
upstream image=png delay_ms=0
rss_before=$(rss_kb "$GATEWAY_PID" VmRSS)
BENCH_REQUESTS=10000 load "growth-10k" gateway 16 -d 300s --timeout 10s
sleep 2
rss_after=$(rss_kb "$GATEWAY_PID" VmRSS)
served=$(curl -fsS "$UPSTREAM/stats")
record "{\"phase\":\"rss-growth\",\"before_kb\":$rss_before,\"after_kb\":$rss_after,\"upstream\":$served}"
say "RSS before 10k: $rss_before kB, after: $rss_after kB"
fi

# ---- memory: 1,000 requests held in flight by a 10 s upstream delay -----------------------
# Twice: with glibc's allocator as it comes, and with its mmap threshold pinned, which
# returns freed image buffers to the system instead of keeping them for reuse.
held_phase() { # LABEL [VAR=value...]
  local label=$1
  shift
  stop_gateway
  start_gateway "$@"
  sleep 1
  local idle peak held max_in_flight
  idle=$(rss_kb "$GATEWAY_PID" VmRSS)
  upstream image=png delay_ms=10000
  (
    # Every 100 ms until stopped: the gateway's RSS and the upstream's in-flight count.
    while kill -0 "$GATEWAY_PID" 2>/dev/null; do
      printf '%s %s\n' "$(rss_kb "$GATEWAY_PID" VmRSS)" \
        "$(curl -fsS "$UPSTREAM/stats" | stat_field in_flight)"
      sleep 0.1
    done
  ) >"$WORK/rss.samples" 2>/dev/null &
  SAMPLER_PID=$!
  BENCH_REQUESTS=1000 load "held-1000-$label" gateway 1000 -d 90s --timeout 60s
  sleep 1
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  peak=$(rss_kb "$GATEWAY_PID" VmHWM)
  held=$(awk '$2 >= 1000 {if ($1 > m) m = $1} END {print m + 0}' "$WORK/rss.samples")
  max_in_flight=$(curl -fsS "$UPSTREAM/stats" | stat_field max_in_flight)
  record "{\"phase\":\"rss-held\",\"allocator\":\"$label\",\"idle_kb\":$idle,\"peak_kb\":$peak,\"while_held_kb\":$held,\"max_in_flight\":$max_in_flight}"
  say "RSS ($label) idle $idle kB, while 1,000 held $held kB, peak $peak kB (upstream saw $max_in_flight at once)"
}
if want held; then
held_phase glibc-default
held_phase glibc-mmap-threshold-128k MALLOC_MMAP_THRESHOLD_=131072
upstream image=png delay_ms=0
stop_gateway
start_gateway
fi

# ---- the async path ------------------------------------------------------------------------
if want async; then
upstream image=png delay_ms=0
line=$("$BIN/examples/bench_async" --gateway "$GATEWAY" --key "$KEY" --concurrency 16 \
  --requests 320 --webhook-port "$WEBHOOK_PORT")
record "{\"phase\":\"async\",\"result\":$line}"
say "async: $line"
fi
stop_gateway

# ---- hostile mix -------------------------------------------------------------------------
if want hostile; then
# 16 clients at once, each sending one of the heaviest inputs the gateway accepts: a
# 50-megapixel upload to /quality (about 400 MB decoded), an outpaint whose ×0.5 canvas is
# near the 4K output cap, and an OpenAI edit of a 16-megapixel image with a mask and n=10.
# Peak RSS is compared with the decoded-pixel budget (limits.max_decoded_bytes).
say "hostile mix: 16 clients with the heaviest legal inputs"
mkdir -p "$WORK/hostile"
python3 - "$WORK/hostile" <<'PY'
import sys
from PIL import Image
d = sys.argv[1]
Image.new("RGB", (8000, 6250), (90, 140, 200)).save(f"{d}/50mp.png")
Image.new("RGB", (2000, 2000), (90, 140, 200)).save(f"{d}/outpaint.png")
Image.new("RGB", (4000, 4000), (90, 140, 200)).save(f"{d}/edit.png")
mask = Image.new("RGBA", (4000, 4000), (0, 0, 0, 255))
mask.paste((0, 0, 0, 0), (1000, 1000, 3000, 3000))
mask.save(f"{d}/mask.png")
PY
upstream image=png delay_ms=200
start_gateway
idle=$(rss_kb "$GATEWAY_PID" VmRSS)
: >"$WORK/hostile.codes"
hostile_pids=()
started=$(date +%s.%N)
for c in $(seq 16); do
  case $((c % 3)) in
    0) args=(-F "image=@$WORK/hostile/50mp.png" "$GATEWAY/quality") ;;
    1) args=(-F "image=@$WORK/hostile/outpaint.png" -F prompt=sky -F extension_ratio=0.5 "$GATEWAY/advanced/outpaint") ;;
    *) args=(-F "image=@$WORK/hostile/edit.png" -F "mask=@$WORK/hostile/mask.png" -F prompt=door -F n=10 "$GATEWAY/v1/images/edits") ;;
  esac
  curl -s -o /dev/null -w '%{http_code}\n' --max-time 300 -H "Authorization: Bearer $KEY" "${args[@]}" \
    >>"$WORK/hostile.codes" &
  hostile_pids+=($!)
done
wait "${hostile_pids[@]}" || true
seconds=$(minus "$(date +%s.%N)" "$started")
peak=$(rss_kb "$GATEWAY_PID" VmHWM)
codes=$(sort "$WORK/hostile.codes" | uniq -c | awk '{printf "%s\"%s\":%s", (NR > 1 ? "," : ""), $2, $1}')
budget_kb=$(( $(sed -n 's/^max_decoded_bytes = //p' "$WORK/imagegate.toml" | tail -1 || true) + 0 ))
((budget_kb > 0)) && budget_kb=$((budget_kb / 1024)) || budget_kb=$((1024 * 1024))
record "{\"phase\":\"hostile-mix\",\"clients\":16,\"idle_kb\":$idle,\"peak_kb\":$peak,\"budget_kb\":$budget_kb,\"seconds\":$seconds,\"codes\":{$codes}}"
say "hostile mix: idle $idle kB, peak $peak kB (budget $budget_kb kB), ${seconds}s, codes {$codes}"
stop_gateway
upstream image=png delay_ms=0
fi

# ---- image work against NumPy and Pillow ---------------------------------------------------
if want imaging; then
say "imaging: Rust"
rust=$(cargo bench --locked --bench imaging -- --dir "$WORK/imaging" 2>/dev/null | grep '^{')
say "imaging: Python"
python=$(python3 bench/imaging_reference.py "$WORK/imaging")
record "{\"phase\":\"imaging\",\"rust\":$rust,\"python\":$python}"
fi

# ---- report --------------------------------------------------------------------------------
python3 bench/report.py "$RESULTS" >"$OUT/report.md"
cat "$OUT/report.md"
say "raw results: $RESULTS; report: $OUT/report.md"
