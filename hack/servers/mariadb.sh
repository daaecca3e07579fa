#!/usr/bin/env bash
# mariadb.sh DIR: two MariaDB 10.11 servers (Debian's mariadb-server), PRIMARY
# (the site that is backed up) and DR (the site that restores). Root logs in
# without a password over the socket and over TCP 127.0.0.1. Each site also
# has an application user with a random password, as a real site has (the
# names zuul.d/secrets.yaml gives: slipway-backup at PRIMARY, slipway-restore
# at DR; all privileges): the one a pipeline should use, so that its
# password is a secret the process-list test can look for. The password is
# kept in DIR/mariadb/SITE/app-password (0600) and stays the same across
# restarts.
# Exports SLIPWAY_TEST_MARIADB_{PRIMARY,DR}_{ADDR,SOCKET,USER,PASSWORD,PASSWORD_FILE}.
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
  pwfile="$d/app-password"
  [ -s "$pwfile" ] || (umask 077; od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$pwfile")
  case $site in primary) user=slipway-backup ;; dr) user=slipway-restore ;; esac
  env_lines+=("export SLIPWAY_TEST_MARIADB_${up}_ADDR=127.0.0.1:$port" "export SLIPWAY_TEST_MARIADB_${up}_SOCKET=$sock"
    "export SLIPWAY_TEST_MARIADB_${up}_USER=$user" "export SLIPWAY_TEST_MARIADB_${up}_PASSWORD=$(cat "$pwfile")"
    "export SLIPWAY_TEST_MARIADB_${up}_PASSWORD_FILE=$pwfile")
  eval "port_$site=$port sock_$site=$sock user_$site=$user"
done
for site in primary dr; do
  eval "sock=\$sock_$site port=\$port_$site user=\$user_$site"
  wait_for "mariadb $site" 60 mariadb-admin --no-defaults -uroot -S "$sock" ping
  wait_for "mariadb $site over TCP" 30 mariadb-admin --no-defaults -uroot -h127.0.0.1 -P "$port" ping
  # The password goes through stdin, never argv.
  pw=$(cat "$root/$site/app-password")
  for host in localhost 127.0.0.1; do
    printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';\nALTER USER '%s'@'%s' IDENTIFIED BY '%s';\nGRANT ALL PRIVILEGES ON *.* TO '%s'@'%s' WITH GRANT OPTION;\n" \
      "$user" "$host" "$pw" "$user" "$host" "$pw" "$user" "$host"
  done | mariadb --no-defaults -uroot -S "$sock" || die "creating the application user $user at mariadb $site failed"
  printf '[client]\npassword=%s\n' "$pw" | mariadb --defaults-extra-file=/dev/stdin -u"$user" -h127.0.0.1 -P "$port" -e 'SELECT 1' >/dev/null \
    || die "the application user $user cannot log in to mariadb $site over TCP with its password"
done
printf '%s\n' "${env_lines[@]}" >"$dir/env.d/mariadb.env"
