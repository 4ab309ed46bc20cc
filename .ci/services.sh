#!/usr/bin/env bash
# Start the services the tests and the benchmark use, if they are not running:
#   PostgreSQL    127.0.0.1:5432 (trust, user postgres)
#   Redis         127.0.0.1:6379
#   Redis Cluster 127.0.0.1:7001-7003 (three primaries, no replicas, no persistence)
#   PgBouncer     127.0.0.1:6432, transaction pooling in front of that PostgreSQL
# Installs what is missing with apt-get (CI runs as root). Safe to run repeatedly. Prints one
# status line per service; exits non-zero if one is still down.
set -u
status=0
RUN_DIR="${TICKETBOSS_SERVICES_DIR:-/tmp/ticketboss-services}"
CLUSTER_PORTS=(7001 7002 7003)
PGBOUNCER_PORT=6432
apt_updated=0

install() {  # install Debian packages if their command is missing: install COMMAND PACKAGE...
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || return 1
  shift
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null 2>&1; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]; }

wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds or the time is up
  local tries=$(($1 * 5))
  shift
  until "$@"; do
    tries=$((tries - 1))
    [ "$tries" -le 0 ] && return 1
    sleep 0.2
  done
}

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }

# --- PostgreSQL -------------------------------------------------------------------------------
install pg_isready postgresql
if command -v pg_isready >/dev/null 2>&1 && pg_up; then
  echo "postgresql: up (127.0.0.1:5432)"
else
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1
  fi
  if command -v pg_isready >/dev/null 2>&1 && wait_for 10 pg_up; then
    echo "postgresql: started (127.0.0.1:5432)"
  else
    echo "postgresql: DOWN (install with: apt-get update && apt-get install -y postgresql)"; status=1
  fi
fi

# --- Redis ------------------------------------------------------------------------------------
install redis-server redis-server
if command -v redis-cli >/dev/null 2>&1 && redis_up 6379; then
  echo "redis: up (127.0.0.1:6379)"
else
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1
  fi
  if command -v redis-cli >/dev/null 2>&1 && wait_for 5 redis_up 6379; then
    echo "redis: started (127.0.0.1:6379)"
  else
    echo "redis: DOWN (install with: apt-get update && apt-get install -y redis-server)"; status=1
  fi
fi

# --- Redis Cluster ----------------------------------------------------------------------------
cluster_ok() { redis-cli -h 127.0.0.1 -p "${CLUSTER_PORTS[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }
cluster_addrs="${CLUSTER_PORTS[*]/#/127.0.0.1:}"
if command -v redis-cli >/dev/null 2>&1 && cluster_ok; then
  echo "redis-cluster: up (${cluster_addrs// /, })"
elif command -v redis-server >/dev/null 2>&1; then
  for port in "${CLUSTER_PORTS[@]}"; do
    dir="$RUN_DIR/redis-$port"
    if ! redis_up "$port"; then
      # A node left over from an earlier cluster would refuse to join a new one: start clean.
      rm -rf "$dir" && mkdir -p "$dir"
      redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
        --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 2000 --save "" \
        --appendonly no --dir "$dir" --logfile "$dir/redis.log" >/dev/null 2>&1
    fi
  done
  for port in "${CLUSTER_PORTS[@]}"; do wait_for 5 redis_up "$port"; done
  known="$(redis-cli -h 127.0.0.1 -p "${CLUSTER_PORTS[0]}" cluster info 2>/dev/null | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')"
  if [ "${known:-0}" -le 1 ]; then
    # shellcheck disable=SC2086  # one argument per node
    redis-cli --cluster create $cluster_addrs --cluster-replicas 0 --cluster-yes >/dev/null 2>&1
  fi
  if wait_for 10 cluster_ok; then
    echo "redis-cluster: started (${cluster_addrs// /, })"
  else
    echo "redis-cluster: DOWN (see $RUN_DIR/redis-*/redis.log)"; status=1
  fi
else
  echo "redis-cluster: DOWN (needs redis-server)"; status=1
fi

# --- PgBouncer --------------------------------------------------------------------------------
install pgbouncer pgbouncer
bouncer_up() { pg_isready -h 127.0.0.1 -p "$PGBOUNCER_PORT" -q; }
if command -v pg_isready >/dev/null 2>&1 && bouncer_up; then
  echo "pgbouncer: up (127.0.0.1:$PGBOUNCER_PORT, transaction pooling)"
elif command -v pgbouncer >/dev/null 2>&1; then
  dir="$RUN_DIR/pgbouncer"
  mkdir -p "$dir"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
; every database name goes to the local PostgreSQL (tests create databases of their own)
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
; a test drops its database WITH (FORCE): do not keep idle server connections around for long
server_idle_timeout = 10
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  echo '"postgres" ""' >"$dir/userlist.txt"
  # PgBouncer refuses to run as root: as root, run it as the postgres account.
  as_user=()
  if [ "$(id -u)" = 0 ]; then
    owner="$(id -un postgres 2>/dev/null || echo nobody)"
    chown -R "$owner" "$dir"
    as_user=(-u "$owner")
  fi
  pgbouncer -d "${as_user[@]}" "$dir/pgbouncer.ini" >/dev/null 2>&1
  if wait_for 5 bouncer_up; then
    echo "pgbouncer: started (127.0.0.1:$PGBOUNCER_PORT, transaction pooling)"
  else
    echo "pgbouncer: DOWN (see $dir/pgbouncer.log)"; status=1
  fi
else
  echo "pgbouncer: DOWN (install with: apt-get update && apt-get install -y pgbouncer)"; status=1
fi
exit $status
