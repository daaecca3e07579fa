#!/usr/bin/env bash
# bench/backup.sh: throughput and peak memory of `backup create` for a large
# MariaDB database streamed to a local S3 (versitygw), against baselines
# measured in the same run:
#   baseline  mariadb-dump | zstd -1 -T2 > /dev/null   (the same compressor and level, no upload)
#   backup    backup create (dump -> zstd -> sha256 -> S3 multipart upload)
#   anchor    mariadb-dump > file; tar -cJf file.tar.xz; upload with one PUT
#             (tutor-contrib-backup's method; only for the first size, it is slow)
# Then, on the first size's backup (BENCH_RESTORE=0 skips it), restore into
# the DR server, each contender in turn for BENCH_ROUNDS rounds:
#   baseline  zstd -dc dump.zst | mariadb               (the same dump, one stream)
#   single    backup restore --restore-jobs 1 from S3    (one connection)
#   parallel  backup restore --restore-jobs NCPU from S3 (the default)
# and backup create of MySQL + MongoDB together (--dump-jobs 2) against the
# two one after the other (--dump-jobs 1), BENCH_MONGO_DOCS documents.
# The database is seeded at BENCH_GB GB of dump (default 1) in BENCH_TABLES
# tables (default 16) and then at BENCH_FACTOR times that (default 4; 0 skips
# the larger run).
#   hack/bench/backup.sh [WORKDIR]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
case ${1:-} in -h|--help) usage ;; esac
gb=${BENCH_GB:-1}; factor=${BENCH_FACTOR:-4}
work=${1:-$(mktemp -d /tmp/slipway-bench-backup.XXXXXX)}
mkdir -p "$work"; work=$(cd "$work" && pwd)
env_dir="$work/env"
cleanup() { "$SLIPWAY_ROOT/hack/testenv.sh" down "$env_dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$SLIPWAY_ROOT/hack/testenv.sh" up "$env_dir" mariadb mongo s3 >&2
# shellcheck source=/dev/null # written by hack/testenv.sh up
. "$env_dir/env"
bin="$work/backup"
(cd "$SLIPWAY_ROOT" && go build -o "$bin" ./cmd/backup)
sock=$SLIPWAY_TEST_MARIADB_PRIMARY_SOCKET
drsock=$SLIPWAY_TEST_MARIADB_DR_SOCKET
tables=${BENCH_TABLES:-16}
sql() { mariadb --no-defaults -uroot -S "$sock" --default-character-set=utf8mb4 "$@"; }
drsql() { mariadb --no-defaults -uroot -S "$drsock" --default-character-set=utf8mb4 "$@"; }
dump() { mariadb-dump --no-defaults -uroot -S "$sock" --default-character-set=utf8mb4 --single-transaction --quick \
  --routines --events --triggers --max-allowed-packet=1G -- bench; }

# ~700 bytes a row of text (compressible) and random bytes (not): a dump
# compresses about 2:1 with zstd, like course content with uploaded files.
seed_rows() { # total rows wanted, spread over $tables tables
  local want=$(( $1 / tables )) have i tb
  sql -e "CREATE DATABASE IF NOT EXISTS bench CHARACTER SET utf8mb4"
  for (( i = 0; i < tables; i++ )); do
    tb=$(printf 'rows_%02d' "$i")
    sql -e "CREATE TABLE IF NOT EXISTS bench.$tb (id BIGINT PRIMARY KEY, title VARCHAR(200), body TEXT, payload VARBINARY(160)) ENGINE=InnoDB"
    have=$(sql -N -e "SELECT COALESCE(MAX(id),0) FROM bench.$tb")
    while (( have < want )); do
      local n=$(( want - have < 200000 ? want - have : 200000 ))
      sql -e "INSERT INTO bench.$tb SELECT $have + seq, CONCAT('Course unit ', $have + seq, ' — ünïcödé 🚀'),
        CONCAT(REPEAT(MD5($have + seq), 8), ' lorem ipsum dolor sit amet ', REPEAT(SHA1(seq % 1000), 4)), RANDOM_BYTES(96)
        FROM bench.seq_1_to_$n"
      have=$(( have + n ))
    done
  done
}

# peak_rss PID: prints the process's peak RSS in MB (VmHWM) until it exits.
peak_rss() {
  local pid=$1 hwm=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && hwm=$v
    sleep 0.1
  done
  echo $(( hwm / 1024 ))
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

export AWS_ACCESS_KEY_ID=$SLIPWAY_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SLIPWAY_TEST_S3_SECRET_KEY
s3=(--s3-endpoint "$SLIPWAY_TEST_S3_ENDPOINT" --s3-bucket "$SLIPWAY_TEST_S3_BUCKET" --s3-region "$SLIPWAY_TEST_S3_REGION")

run_size() { # label rows with_anchor
  local label=$1 rows=$2 anchor=$3
  log "seeding $label ($rows rows)"
  seed_rows "$rows"
  sql -N -e "SELECT CONCAT('ANALYZE TABLE bench.', TABLE_NAME, ';') FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'bench'" | sql >/dev/null
  # Warm the buffer pool and page cache equally for every contender.
  dump >/dev/null

  # Baseline and backup alternate for BENCH_ROUNDS rounds (default 2), so
  # load from other work on the machine hits both; the best round of each
  # is compared.
  local t0 t1 raw r best_base=0 best_ours=0 rss_max=0 stored=0
  for r in $(seq 1 "${BENCH_ROUNDS:-2}"); do
    t0=$(now); raw=$(dump | tee >(zstd -1 -T2 -q -c >/dev/null) | wc -c); t1=$(now)
    local base_s; base_s=$(secs "$t0" "$t1")
    t0=$(now)
    "$bin" --log-format json create --site bench --s3-prefix "bench-$label-$r/" --mysql-socket "$sock" --mysql-database bench \
      "${s3[@]}" >"$work/result-$label.json" 2>"$work/create-$label.log" &
    local pid=$!
    local rss; rss=$(peak_rss "$pid")
    wait "$pid" || { tail -n 5 "$work/create-$label.log" >&2; die "backup create failed"; }
    t1=$(now)
    local ours_s; ours_s=$(secs "$t0" "$t1")
    stored=$(grep -o '"size": [0-9]*' "$work/result-$label.json" | head -1 | awk '{print $2}')
    printf '%-6s round %s: dump %.0f MB | baseline dump|zstd -1>/dev/null %6ss %6s MB/s | backup create to S3 %6ss %6s MB/s  ratio %s  peak RSS %s MB  stored %s MB\n' \
      "$label" "$r" "$(awk -v b="$raw" 'BEGIN{print b/1e6}')" "$base_s" "$(awk -v b="$raw" -v s="$base_s" 'BEGIN{printf "%.1f", b/1e6/s}')" \
      "$ours_s" "$(awk -v b="$raw" -v s="$ours_s" 'BEGIN{printf "%.1f", b/1e6/s}')" "$(awk -v a="$base_s" -v b="$ours_s" 'BEGIN{printf "%.2f", a/b}')" \
      "$rss" "$(awk -v b="$stored" 'BEGIN{printf "%.0f", b/1e6}')"
    best_base=$(awk -v a="$best_base" -v b="$base_s" 'BEGIN{print (a==0||b<a)?b:a}')
    best_ours=$(awk -v a="$best_ours" -v b="$ours_s" 'BEGIN{print (a==0||b<a)?b:a}')
    (( rss > rss_max )) && rss_max=$rss
  done
  local ours_s=$best_ours
  printf '%-6s BEST: baseline %ss %s MB/s, backup create %ss %s MB/s, ratio %s (want >= 0.90); peak RSS %s MB (want <= 64)\n' \
    "$label" "$best_base" "$(awk -v b="$raw" -v s="$best_base" 'BEGIN{printf "%.1f", b/1e6/s}')" "$best_ours" \
    "$(awk -v b="$raw" -v s="$best_ours" 'BEGIN{printf "%.1f", b/1e6/s}')" "$(awk -v a="$best_base" -v b="$best_ours" 'BEGIN{printf "%.2f", a/b}')" "$rss_max"

  if [ "$anchor" = 1 ]; then
    t0=$(now)
    dump >"$work/anchor.sql"
    tar -C "$work" -cJf "$work/anchor.tar.xz" anchor.sql
    rm -f "$work/anchor.sql"
    curl -fsS --aws-sigv4 "aws:amz:$SLIPWAY_TEST_S3_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
      -H x-amz-content-sha256:UNSIGNED-PAYLOAD -T "$work/anchor.tar.xz" \
      "$SLIPWAY_TEST_S3_ENDPOINT/$SLIPWAY_TEST_S3_BUCKET/anchor/backup.tar.xz" >/dev/null
    t1=$(now)
    local an_s; an_s=$(secs "$t0" "$t1")
    printf '%-6s anchor (dump to disk, tar.xz, upload) %6ss %6s MB/s, %s MB on local disk; backup create is %sx faster\n' \
      "$label" "$an_s" "$(awk -v b="$raw" -v s="$an_s" 'BEGIN{printf "%.1f", b/1e6/s}')" \
      "$(du -m "$work/anchor.tar.xz" | cut -f1)" "$(awk -v a="$an_s" -v b="$ours_s" 'BEGIN{printf "%.1f", a/b}')"
    rm -f "$work/anchor.tar.xz"
  fi
}

# best_of VAR SECONDS: keeps the smaller time in VAR (0 = none yet).
best_of() { local -n b=$1; b=$(awk -v a="$b" -v x="$2" 'BEGIN{print (a==0||x<a)?x:a}'); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

# run_restore PREFIX: the restore contenders on the backup under PREFIX.
run_restore() {
  local prefix=$1 r t0 t1 s pid rss base=0 single=0 par=0 rss_single=0 rss_par=0 raw jobs
  jobs=$(nproc)
  log "restore benchmark: dumping the baseline's file"
  dump | zstd -1 -T2 -q -c >"$work/dump.zst"
  raw=$(zstd -dc "$work/dump.zst" | wc -c)
  local dr=(--mysql-socket "$drsock" "${s3[@]}" --s3-prefix "$prefix" --latest --fresh)
  for r in $(seq 1 "${BENCH_ROUNDS:-2}"); do
    drsql -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench CHARACTER SET utf8mb4"
    t0=$(now); zstd -dc "$work/dump.zst" | drsql bench; t1=$(now)
    s=$(secs "$t0" "$t1"); best_of base "$s"
    printf 'restore round %s: baseline zstd -dc | mariadb %6ss\n' "$r" "$s"
    for j in 1 "$jobs"; do
      t0=$(now)
      "$bin" --log-format json restore --restore-jobs "$j" "${dr[@]}" >"$work/restore.json" 2>"$work/restore-$j.log" &
      pid=$!; rss=$(peak_rss "$pid")
      wait "$pid" || { tail -n 5 "$work/restore-$j.log" >&2; die "backup restore failed"; }
      t1=$(now); s=$(secs "$t0" "$t1")
      printf 'restore round %s: backup restore --restore-jobs %s from S3 %6ss  peak RSS %s MB\n' "$r" "$j" "$s" "$rss"
      if [ "$j" = 1 ]; then best_of single "$s"; (( rss > rss_single )) && rss_single=$rss
      else best_of par "$s"; (( rss > rss_par )) && rss_par=$rss; fi
    done
  done
  rm -f "$work/dump.zst"
  printf 'restore BEST (%.0f MB dump, %s tables): baseline %ss, single-stream %ss (peak RSS %s MB), parallel x%s %ss (peak RSS %s MB)\n' \
    "$(awk -v b="$raw" 'BEGIN{print b/1e6}')" "$tables" "$base" "$single" "$rss_single" "$jobs" "$par" "$rss_par"
  printf 'restore RATIO: parallel/baseline %s (goal <= 0.60, at least <= 1.00); parallel/single-stream %s; peak RSS %s MB (want <= 128)\n' \
    "$(ratio "$par" "$base")" "$(ratio "$par" "$single")" "$rss_par"
}

# run_create_pair: backup create of MySQL + MongoDB, together vs in turn.
run_create_pair() {
  local docs=${BENCH_MONGO_DOCS:-200000} r j t0 t1 s pid rss one=0 two=0 rss_two=0
  log "seeding MongoDB ($docs documents of ~600 bytes)"
  # A BSON file (documents {_id: i, body: text}) that mongorestore loads.
  mkdir -p "$work/bson/bench"
  perl -e 'for my $i (0 .. $ARGV[0] - 1) {
      my $s = ("course unit $i " . ("lorem ipsum dolor sit amet " x 20)) . "\x{1F680}";
      utf8::encode($s);
      my $d = pack("C Z* l<", 0x10, "_id", $i) . pack("C Z* l< a* x", 0x02, "body", length($s) + 1, $s);
      print pack("l<", length($d) + 5), $d, "\0";
    }' "$docs" >"$work/bson/bench/docs.bson"
  "$SLIPWAY_TEST_MONGORESTORE" --uri="$SLIPWAY_TEST_MONGO_PRIMARY_URI" --drop --noIndexRestore --quiet --dir "$work/bson"
  rm -rf "$work/bson"
  for r in $(seq 1 "${BENCH_ROUNDS:-2}"); do
    for j in 1 2; do
      t0=$(now)
      SLIPWAY_MONGO_URI=$SLIPWAY_TEST_MONGO_PRIMARY_URI "$bin" --log-format json create --site bench --s3-prefix "bench-pair-$r-$j/" \
        --mysql-socket "$sock" --mysql-database bench --mongo-database bench --mongodump-bin "$SLIPWAY_TEST_MONGODUMP" --dump-jobs "$j" \
        "${s3[@]}" >/dev/null 2>"$work/create-pair.log" &
      pid=$!; rss=$(peak_rss "$pid")
      wait "$pid" || { tail -n 5 "$work/create-pair.log" >&2; die "backup create failed"; }
      t1=$(now); s=$(secs "$t0" "$t1")
      printf 'create round %s: MySQL + MongoDB --dump-jobs %s %6ss  peak RSS %s MB\n' "$r" "$j" "$s" "$rss"
      if [ "$j" = 1 ]; then best_of one "$s"; else best_of two "$s"; (( rss > rss_two )) && rss_two=$rss; fi
    done
  done
  printf 'create RATIO: together/one-after-the-other %s (goal <= 0.70); peak RSS %s MB (want <= 64)\n' "$(ratio "$two" "$one")" "$rss_two"
}

# About 1.75M rows make 1 GB of dump (1.2 GB in InnoDB).
rows1=$(awk -v g="$gb" 'BEGIN{printf "%d", g*1750000}')
run_size "${gb}GB" "$rows1" "${BENCH_ANCHOR:-1}"
if [ "${BENCH_RESTORE:-1}" != 0 ]; then
  run_restore "bench-${gb}GB-${BENCH_ROUNDS:-2}/"
  run_create_pair
fi
if [ "$factor" != 0 ]; then
  run_size "$(awk -v g="$gb" -v f="$factor" 'BEGIN{print g*f}')GB" "$(( rows1 * factor ))" 0
fi
