#!/usr/bin/env bash
# Benchmark: how long `calisnap analyze` takes on big generated bundles, next to how long
# `gzip -dc` takes just to decompress them, plus peak memory, plus a check that a .tar.gz and
# the same bundle unpacked give identical findings; then a parser-only comparison with
# insights-core's iptables-save parser. See bench/README.md.
#
#   bench/run.sh              the 0.25x, 1x and 4x bundles (4x needs ~6 GB of disk, and time)
#   bench/run.sh 0.25 1       only these scales
#   bench/run.sh --smoke      a tiny bundle, a few seconds (what CI can run)
#
# Environment: BENCH_OUT (default bench/out), BENCH_REPEAT (runs per timing, best kept;
# default 3, 1 with --smoke), BENCH_SEED (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${BENCH_OUT:-bench/out}
repeat=${BENCH_REPEAT:-3}
seed=${BENCH_SEED:-1}
smoke=0
scales=()
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    -h | --help)
      sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "run.sh: unknown option $arg" >&2
      exit 2
      ;;
    *) scales+=("$arg") ;;
  esac
done
if [ "$smoke" = 1 ]; then
  out=$out/smoke
  repeat=${BENCH_REPEAT:-1}
  [ ${#scales[@]} -gt 0 ] || scales=(0.01)
fi
[ ${#scales[@]} -gt 0 ] || scales=(0.25 1 4)
mkdir -p "$out"

# GNU time for peak RSS.
if [ ! -x /usr/bin/time ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing GNU time (apt) for peak-RSS measurement" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
  else
    echo "run.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2
    exit 2
  fi
fi

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building (release)"
cargo build --release --quiet --bin calisnap --example gen_bundle --example parse_iptables
calisnap=target/release/calisnap
gen=target/release/examples/gen_bundle
bundle_name=calico-bundle-gen-20261125T140215Z

if [ "$smoke" = 1 ]; then
  echo "== generator self-tests"
  cargo test --release --quiet --example gen_bundle
fi

# run_timed OUTFILE CMD...: runs CMD (stdout discarded) with GNU time; prints
# "wall_s max_rss_kib cpu_s".
run_timed() {
  local log=$1
  shift
  /usr/bin/time -f '%e %M %U %S' -o "$log" "$@" >/dev/null
  awk 'END { printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$log"
}

# best_of N CMD...: the best wall time of N runs, the largest RSS, the CPU time of the best run.
best_of() {
  local n=$1
  shift
  local best="" line
  for _ in $(seq "$n"); do
    line=$(run_timed "$out/.time" "$@")
    best=$(printf '%s\n%s\n' "$best" "$line" | awk 'NF {
      if (!seen || $1 < w) { w = $1; c = $3 } if ($2 > r) r = $2; seen = 1 }
      END { printf "%s %s %s\n", w, r, c }')
  done
  echo "$best"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# This run's rows; every run's rows are also appended to results.tsv (with the date).
results=$out/.results
header=$'scale\tgz_bytes\traw_bytes\tgzip_dc_s\tanalyze_tgz_s\tanalyze_tgz_cpu_s\tanalyze_tgz_rss_kib\tratio\tanalyze_dir_s\tanalyze_dir_rss_kib\tfindings_equal'
printf '%s\n' "$header" >"$results"
[ -s "$out/results.tsv" ] || printf 'date\t%s\n' "$header" >"$out/results.tsv"
status=0

for scale in "${scales[@]}"; do
  dir=$out/scale-$scale
  tgz=$dir/$bundle_name.tar.gz
  mkdir -p "$dir"
  if [ -s "$tgz" ]; then
    echo "== ${scale}x: reusing $tgz"
  else
    echo "== ${scale}x: generating"
    line=$(run_timed "$out/.time" "$gen" --scale "$scale" --seed "$seed" --out "$dir")
    echo "   generated in $(echo "$line" | cut -d' ' -f1) s (peak RSS $(mib "$(echo "$line" | cut -d' ' -f2)") MiB)"
  fi
  if [ ! -d "$dir/unpacked/$bundle_name" ]; then
    rm -rf "$dir/unpacked" "$dir/unpacked.tmp"
    mkdir -p "$dir/unpacked.tmp"
    tar xzf "$tgz" -C "$dir/unpacked.tmp"
    mv "$dir/unpacked.tmp" "$dir/unpacked"
  fi
  gz_bytes=$(stat -c %s "$tgz")
  raw_bytes=$(du -sb "$dir/unpacked/$bundle_name" | cut -f1)

  # Warm the page cache so every contender reads from memory.
  cat "$tgz" >/dev/null
  # shellcheck disable=SC2016 # $1 is expanded by the inner sh
  read -r gz_s _ _ < <(best_of "$repeat" sh -c 'gzip -dc "$1" >/dev/null' _ "$tgz")
  # The timed runs write their JSON report to a file (not /dev/null: the findings are compared
  # below); a report is a few hundred KiB, nothing next to the bundle.
  read -r an_s an_rss an_cpu < <(best_of "$repeat" "$calisnap" analyze --format json -o "$dir/report-tgz.json" --fail-on never "$tgz")
  read -r dir_s dir_rss _ < <(best_of "$repeat" "$calisnap" analyze --format json -o "$dir/report-dir.json" --fail-on never "$dir/unpacked/$bundle_name")

  # Same findings (and the same artifacts read) from the tarball and from the folder.
  if python3 - "$dir/report-tgz.json" "$dir/report-dir.json" <<'PY'; then
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def view(r):
    arts = [(x["path"], x["kind"], x.get("node"), x["records"], x["bytes"]) for x in r["artifacts"]]
    return r["findings"], arts
fa, aa = view(a)
fb, ab = view(b)
if fa != fb or aa != ab:
    print(f"   DIFFERENT: {len(fa)} vs {len(fb)} findings, {len(aa)} vs {len(ab)} artifacts", file=sys.stderr)
    sys.exit(1)
print(f"   {len(fa)} findings, {len(aa)} artifacts: identical for .tar.gz and folder", file=sys.stderr)
PY
    same=yes
  else
    same=NO
    status=1
  fi

  ratio=$(awk -v a="$an_s" -v g="$gz_s" 'BEGIN { printf "%.3f", (g > 0 ? a / g : 0) }')
  row=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$scale" "$gz_bytes" "$raw_bytes" "$gz_s" \
    "$an_s" "$an_cpu" "$an_rss" "$ratio" "$dir_s" "$dir_rss" "$same")
  echo "$row" >>"$results"
  printf '%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$row" >>"$out/results.tsv"
done

echo
echo "== results (best of $repeat; wall seconds; RSS = peak resident set)"
awk -F'\t' 'NR == 1 {
    printf "%-6s %10s %10s | %9s | %12s %9s %9s %7s | %12s %9s | %s\n",
      "scale", "tar.gz", "unpacked", "gzip -dc", "analyze tgz", "cpu", "RSS", "ratio",
      "analyze dir", "RSS", "same findings"
    next }
  { printf "%-6s %8.1fMB %8.1fMB | %8.2fs | %11.2fs %8.2fs %6.0fMiB %7.2f | %11.2fs %6.0fMiB | %s\n",
      $1 "x", $2 / 1e6, $3 / 1e6, $4, $5, $6, $7 / 1024, $8, $9, $10 / 1024, $11 }' "$results"
# The target is set for the 1x bundle (the scale bundle); the other scales show the growth.
awk -F'\t' 'NR > 1 && $1 == "1" { seen = 1; if ($8 > 0.6 || $7 > 384 * 1024) miss = 1 }
  END { t = "target at 1x (analyze <= 0.6x gzip -dc, RSS <= 384 MiB): "
        print (!seen ? t "1x not run" : miss ? t "NOT met" : t "met") }' "$results"

# ---- Parser only: our iptables-save parser vs insights-core's, on one ~100k-rule dump.
echo
echo "== parser only: iptables-save"
pdir=$out/parser
if [ "$smoke" = 1 ]; then endpoints=60 policies=60; else endpoints=4000 policies=2000; fi
one=$pdir/$bundle_name/nodes/worker-001/iptables-save.txt
if [ ! -s "$one" ]; then
  rm -rf "$pdir" "$pdir.tmp"
  # One node holding every pod: a single genuine dump (about 100k rules at full size).
  "$gen" --dir --seed "$seed" --out "$pdir.tmp" --nodes 1 --endpoints "$endpoints" --policies "$policies" \
    --conntrack 0 --log-bytes 0 --ipset-members 0 >/dev/null 2>&1
  mv "$pdir.tmp" "$pdir"
fi
sed -E 's/^\[[0-9]+:[0-9]+\] //' "$one" >"$pdir/iptables-save-nocounters.txt"
rules=$(grep -c -- '-A ' "$one" || true)
echo "   file: $rules rules, $(stat -c %s "$one") bytes (with -c counters); counters stripped for the comparison"
ours=$(target/release/examples/parse_iptables "$pdir/iptables-save-nocounters.txt" 20)
ours_c=$(target/release/examples/parse_iptables "$one" 20)
echo "   calisnap (no counters):   $ours"
echo "   calisnap (with counters): $ours_c"
if ! python3 -c 'import insights.parsers.iptables' 2>/dev/null; then
  echo "   installing insights-core (pip)" >&2
  python3 -m pip install --quiet insights-core >/dev/null 2>&1 || true
fi
if python3 -c 'import insights.parsers.iptables' 2>/dev/null; then
  theirs=$(python3 bench/insights_iptables.py "$pdir/iptables-save-nocounters.txt" 5)
  theirs_c=$(python3 bench/insights_iptables.py "$one" 3)
  echo "   insights-core (no counters):   $theirs"
  echo "   insights-core (with counters): $theirs_c"
  python3 - "$ours" "$theirs" "$theirs_c" <<'PY'
import json, sys
o, t, tc = (json.loads(x) for x in sys.argv[1:4])
if o["records"] == 0:
    print("   calisnap's parser returned 0 records (not implemented in this build): "
          "no meaningful ratio")
else:
    # Both sides start from the text in memory (insights-core's lines are split before its
    # timer starts); parse_shared is what the bundle reader runs, parse also copies the text.
    print(f"   throughput: calisnap {o['shared_mb_per_s']:.1f} MB/s as the bundle reader runs it "
          f"(parse_shared), {o['mb_per_s']:.1f} MB/s with a copy of the text (parse); "
          f"{o['records']} records")
    print(f"   insights-core {t['mb_per_s']:.1f} MB/s ({t['rules']} rules): "
          f"ratio {o['shared_mb_per_s'] / t['mb_per_s']:.1f}x "
          f"({o['mb_per_s'] / t['mb_per_s']:.1f}x with the copy)")
print(f"   note: on the -c dump insights-core keeps {tc['rules']} rules "
      "(it only reads lines starting with '-A')")
PY
else
  echo "   insights-core not available: comparison skipped"
fi

if [ "$smoke" = 1 ]; then
  echo
  echo "== determinism: the same seed twice gives the same bytes"
  again=$out/again
  rm -rf "$again"
  "$gen" --scale "${scales[0]}" --seed "$seed" --out "$again" >/dev/null 2>&1
  if cmp -s "$out/scale-${scales[0]}/$bundle_name.tar.gz" "$again/$bundle_name.tar.gz"; then
    echo "   identical"
  else
    echo "   DIFFERENT" >&2
    status=1
  fi
fi
rm -f "$out/.time" "$results"
exit "$status"
