#!/usr/bin/env bash
# mariadb.sh DIR: two MariaDB 10.11 servers (Debian's mariadb-server), PRIMARY
# (the site that is backed up) and DR (the site that restores). Root logs in
# without a password over the socket and over TCP 127.0.0.1.
# Exports SLIPWAY_TEST_MARIADB_{PRIMARY,DR}_{ADDR,SOCKET}.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1; root="$dir/mariadb"; mkdir -p "$root"
command -v mariadbd >/dev/null || die "mariadbd missing: install mariadb-server (hack/install-deps.sh)"
command -v mariadb-dump >/dev/null || die "mariadb-dump missing: install mariadb-client (hack/install-deps.sh)"

env_lines=()
for site in primary dr; do
  d="$root/$site"; data="$d/data"; sock="$d/mysqld.sock"; port=$(free_port)
  mkdir -p "$d"
  if [ ! -d "$data/mysql" ]; then
    # --no-defaults must come first; a small redo log keeps the datadir at ~26 MB.
    mariadb-install-db --no-defaults --datadir="$data" --user=root \
      --auth-root-authentication-method=normal --skip-test-db --innodb-log-file-size=8M \
      >"$dir/logs/mariadb-$site-install.log" 2>&1 || die "mariadb-install-db for $site failed (see $dir/logs/mariadb-$site-install.log)"
  fi
  start_bg "mariadb-$site" "$dir" mariadbd --no-defaults --datadir="$data" --socket="$sock" \
    --port="$port" --bind-address=127.0.0.1 --user=root --pid-file="$d/mysqld.pid" \
    --log-error="$d/error.log" --innodb-buffer-pool-size=64M --innodb-log-file-size=8M \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --max-allowed-packet=64M --skip-name-resolve
  up=${site^^}
  env_lines+=("export SLIPWAY_TEST_MARIADB_${up}_ADDR=127.0.0.1:$port" "export SLIPWAY_TEST_MARIADB_${up}_SOCKET=$sock")
  eval "port_$site=$port sock_$site=$sock"
done
for site in primary dr; do
  eval "sock=\$sock_$site port=\$port_$site"
  wait_for "mariadb $site" 60 mariadb-admin --no-defaults -uroot -S "$sock" ping
  wait_for "mariadb $site over TCP" 30 mariadb-admin --no-defaults -uroot -h127.0.0.1 -P "$port" ping
done
printf '%s\n' "${env_lines[@]}" >"$dir/env.d/mariadb.env"
