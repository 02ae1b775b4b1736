#!/usr/bin/env bash
# Starts the servers the tests use (PostgreSQL, MariaDB and Redis, the Celery broker, on 127.0.0.1), if they
# are down. The S3 endpoint (moto) is started and stopped by the test fixtures themselves.
set -euo pipefail

wait_for() {  # name, test command
  for _ in $(seq 1 30); do
    if eval "$2" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "services: $1 did not come up" >&2
  return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for PostgreSQL "pg_isready -h 127.0.0.1 -p 5432"
fi
if ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB "mariadb-admin -h 127.0.0.1 -u root ping"
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting Redis"
  redis-server /etc/redis/redis.conf --bind 127.0.0.1 --port 6379 --daemonize yes
  wait_for Redis "redis-cli -h 127.0.0.1 -p 6379 ping"
fi
