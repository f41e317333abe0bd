#!/usr/bin/env bash
# A real distributed Airflow on loopback, for the scale-out test (issue 9):
# PostgreSQL (metadata DB) + Redis (Celery broker) + api-server, scheduler, dag-processor,
# triggerer and two Celery workers, all bound to 127.0.0.1, all state in one temp folder.
#
#   scripts/stack.sh up       install what is missing, start everything, wait until healthy
#   scripts/stack.sh status   what runs, the health endpoint, the workers' ping, memory
#   scripts/stack.sh down     stop exactly the processes `up` started (by recorded PID)
#   scripts/stack.sh test     the end-to-end test (tests/stack/stack_driver.py), then down
#
# One service of a running stack (for fault tests; NAME is api-server, scheduler, dag-processor,
# triggerer or worker-N, any N: `start worker-3` adds a worker):
#   scripts/stack.sh start NAME...        start it again (or a new worker) with the stack's settings
#   scripts/stack.sh stop NAME...         SIGTERM to its process group, SIGKILL after 30 s
#   scripts/stack.sh kill NAME [SIGNAL]   SIGNAL (default KILL) at once to its process group and to
#                                         every process below it, in whatever group (a lost node)
#   scripts/stack.sh wait [WORKER...]     until healthy and the workers (default: those running)
#                                         answer a Celery ping
#
# Settings (environment): STACK_DIR (default ${TMPDIR:-/tmp}/engagelab-stack), STACK_DAGS_FOLDER
# (default example_dags), STACK_WORKER_CONCURRENCY (2), STACK_TIMEOUT (seconds to wait for a
# healthy stack, 300), VENV (.venv), STACK_DRIVER (the script `test` runs, default
# tests/stack/stack_driver.py). Every AIRFLOW_CONN_*/AIRFLOW_VAR_*/ENGAGELAB_* variable set
# when `up` runs reaches every process, and every STACK_AIRFLOW__<SECTION>__<KEY> becomes
# AIRFLOW__<SECTION>__<KEY> (over the stack's own value), e.g.
# STACK_AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=30. Each worker's TMPDIR is
# $STACK_DIR/tmp/<worker> (what a killed task leaves there can be looked at). After `up`,
# `source $STACK_DIR/env.sh` points the airflow CLI at the stack; $STACK_DIR/stack.json has the
# ports, the API URL and its login.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$REPO/.venv}
PY=$VENV/bin/python
AIRFLOW_BIN=$VENV/bin/airflow
STACK_DIR=${STACK_DIR:-${TMPDIR:-/tmp}/engagelab-stack}
STACK_DAGS_FOLDER=${STACK_DAGS_FOLDER:-$REPO/example_dags}
STACK_WORKER_CONCURRENCY=${STACK_WORKER_CONCURRENCY:-2}
STACK_TIMEOUT=${STACK_TIMEOUT:-300}
STACK_DRIVER=${STACK_DRIVER:-$REPO/tests/stack/stack_driver.py}
[[ "$STACK_DRIVER" == /* ]] || STACK_DRIVER=$REPO/$STACK_DRIVER
MARKER=.engagelab-stack
# Every service `up` starts, in start order (`start worker-N` may add workers later).
SERVICES=(postgres redis api-server scheduler dag-processor triggerer worker-1 worker-2)
AIRFLOW_SERVICES=(api-server scheduler dag-processor triggerer)

log() { printf '[stack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- install ----------------------------------------------------------------------------------

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n "$d" && -x "$d/initdb" ]] && echo "$d"
}

ensure_system_packages() {
    local missing=()
    pg_bindir >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v runuser >/dev/null || missing+=(util-linux)
    ((${#missing[@]} == 0)) && return 0
    [[ $EUID -eq 0 ]] || die "missing Debian packages: ${missing[*]} (apt-get install them as root)"
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' own services (redis on 6379, PostgreSQL's main cluster) must not start: the
    # stack runs private instances. Without a policy-rc.d, add a temporary one that says no.
    local policy=/usr/sbin/policy-rc.d added=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
    fi
    local rc=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
    if [[ -n "$added" ]]; then rm -f "$policy"; fi
    ((rc == 0)) || die "apt-get install ${missing[*]} failed"
    pg_bindir >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb"
}

ensure_python_packages() {
    [[ -x "$PY" && -x "$AIRFLOW_BIN" ]] || die "no Airflow in $VENV: run 'make venv' first"
    if "$PY" - <<'EOF' 2>/dev/null; then return 0; fi
import importlib.metadata as md
import airflow.providers.celery, asyncpg, celery, psycopg2, redis  # noqa: F401
assert tuple(int(x) for x in md.version("celery").split(".")[:2]) < (5, 7)
EOF
    local av constraints=()
    av=$("$PY" -c 'import airflow; print(airflow.__version__)')
    [[ -f "$REPO/constraints/airflow-$av.txt" ]] && constraints+=(-c "$REPO/constraints/airflow-$av.txt")
    constraints+=(-c "$REPO/constraints/celery-stack.txt")
    log "pip install the Celery provider, celery<5.7, psycopg2-binary, asyncpg, redis into $VENV"
    "$PY" -m pip install -q "${constraints[@]}" \
        apache-airflow-providers-celery "celery<5.7" psycopg2-binary asyncpg redis
}

# --- processes --------------------------------------------------------------------------------

# The start time (clock ticks since boot) of a PID: with the PID it names one process, so a PID
# reused after our process ended is never mistaken for ours.
proc_start() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}' || true; }

record_pid() { # name pid
    echo "$2 $(proc_start "$2")" >"$STACK_DIR/pids/$1"
}

# PID of a recorded service if that very process still runs, else nothing.
live_pid() {
    local f=$STACK_DIR/pids/$1 pid start
    [[ -f "$f" ]] || return 1
    read -r pid start <"$f"
    [[ -n "$pid" && -d /proc/$pid && "$(proc_start "$pid")" == "$start" ]] || return 1
    echo "$pid"
}

descendants() { # every process below PID, deepest last
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# Start a service in its own session (its PID is its process group), output to logs/NAME.log.
start_service() { # name command...
    local name=$1
    shift
    setsid "$@" >>"$STACK_DIR/logs/$name.log" 2>&1 </dev/null &
    local pid=$!
    record_pid "$name" "$pid"
    log "started $name (pid $pid)"
}

# Stop services together: SIGTERM to each one's process group at once, wait up to 30 s for them
# all, then SIGKILL whatever of ours is left (leaders, groups, and children that left the group,
# each checked against its recorded start time so that a reused PID is never hit).
stop_services() { # name...
    local name pid pg i alive
    local -A leader=() group=() kids=()
    for name in "$@"; do
        pid=$(live_pid "$name") || { rm -f "$STACK_DIR/pids/$name"; continue; }
        if [[ "$name" == postgres ]]; then
            pg_ctl_as_owner stop -D "$STACK_DIR/pg/data" -m fast -w -t 30 >/dev/null 2>&1 || true
        fi
        kids[$name]=$(for i in $(descendants "$pid"); do echo "$i:$(proc_start "$i")"; done)
        pg=$(ps -o pgid= -p "$pid" | tr -d ' ' || true)
        leader[$name]=$pid
        group[$name]=$pg
        if [[ "$pg" == "$pid" ]]; then kill -TERM -- "-$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for ((i = 0; i < 60; i++)); do
        alive=0
        for name in "${!leader[@]}"; do
            if [[ -d /proc/${leader[$name]} ]]; then alive=1; fi
        done
        ((alive)) || break
        sleep 0.5
    done
    for name in "${!leader[@]}"; do
        pid=${leader[$name]}
        if [[ -d /proc/$pid ]]; then
            log "$name (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
            if [[ "${group[$name]}" == "$pid" ]]; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    sleep 0.2
    for name in "${!leader[@]}"; do
        for i in ${kids[$name]}; do
            if [[ -n "${i#*:}" && "$(proc_start "${i%%:*}")" == "${i#*:}" ]]; then
                kill -KILL "${i%%:*}" 2>/dev/null || true
            fi
        done
        rm -f "$STACK_DIR/pids/$name"
        log "stopped $name (pid ${leader[$name]})"
    done
}

pg_ctl_as_owner() { # PostgreSQL's tools refuse to run as root: run them as `postgres` then.
    local bin
    bin=$(pg_bindir)/pg_ctl
    if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$bin" "$@"; else "$bin" "$@"; fi
}

# --- up ---------------------------------------------------------------------------------------

free_ports() { # N distinct free TCP ports on 127.0.0.1
    "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

secret() { "$PY" -c 'import secrets; print(secrets.token_hex(24))'; }

write_env() { # the whole Airflow configuration of the stack, shared by every process
    local f=$STACK_DIR/env.sh var
    : >"$f"
    chmod 600 "$f"
    export_var() { printf 'export %s=%q\n' "$1" "$2" >>"$f"; }
    export_var AIRFLOW_HOME "$STACK_DIR/airflow"
    export_var AIRFLOW__CORE__EXECUTOR CeleryExecutor
    export_var AIRFLOW__CORE__DAGS_FOLDER "$STACK_DAGS_FOLDER"
    export_var AIRFLOW__CORE__LOAD_EXAMPLES False
    export_var AIRFLOW__CORE__FERNET_KEY "$FERNET_KEY"
    export_var AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS "admin:admin"
    export_var AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE "$STACK_DIR/passwords.json"
    export_var AIRFLOW__CORE__EXECUTION_API_SERVER_URL "http://127.0.0.1:$API_PORT/execution/"
    export_var AIRFLOW__API__BASE_URL "http://127.0.0.1:$API_PORT"
    export_var AIRFLOW__API__HOST 127.0.0.1
    export_var AIRFLOW__API__PORT "$API_PORT"
    export_var AIRFLOW__API__SECRET_KEY "$API_SECRET_KEY"
    export_var AIRFLOW__API_AUTH__JWT_SECRET "$JWT_SECRET"
    export_var AIRFLOW__DATABASE__SQL_ALCHEMY_CONN \
        "postgresql+psycopg2://airflow:$PG_PASSWORD@127.0.0.1:$PG_PORT/airflow"
    export_var AIRFLOW__CELERY__BROKER_URL "redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"
    export_var AIRFLOW__CELERY__RESULT_BACKEND \
        "db+postgresql+psycopg2://airflow:$PG_PASSWORD@127.0.0.1:$PG_PORT/airflow"
    export_var AIRFLOW__CELERY__WORKER_CONCURRENCY "$STACK_WORKER_CONCURRENCY"
    # A new or changed DAG file is seen within seconds, not minutes.
    export_var AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL 10
    export_var AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT 300
    export_var AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT 21600
    export_var AIRFLOW__LOGGING__LOGGING_LEVEL INFO
    # The caller's connections, variables and provider settings reach every process.
    while IFS= read -r var; do
        export_var "$var" "${!var}"
    done < <(compgen -e | grep -E '^(AIRFLOW_CONN_|AIRFLOW_VAR_|ENGAGELAB_)' || true)
    # The caller's Airflow settings (STACK_AIRFLOW__X__Y -> AIRFLOW__X__Y), after ours: they win.
    while IFS= read -r var; do
        export_var "${var#STACK_}" "${!var}"
    done < <(compgen -e | grep -E '^STACK_AIRFLOW__[A-Z0-9_]+__[A-Z0-9_]+$' || true)
}

write_info() {
    "$PY" - "$STACK_DIR/stack.json" <<EOF
import json, sys
json.dump({
    "stack_dir": "$STACK_DIR",
    "api_url": "http://127.0.0.1:$API_PORT",
    "username": "admin",
    "password": "$ADMIN_PASSWORD",
    "postgres_port": $PG_PORT,
    "redis_port": $REDIS_PORT,
    "dags_folder": "$STACK_DAGS_FOLDER",
    "workers": ["worker-1", "worker-2"],
    "worker_concurrency": $STACK_WORKER_CONCURRENCY,
    "services": "${SERVICES[*]}".split(),
}, open(sys.argv[1], "w"), indent=2)
EOF
    chmod 600 "$STACK_DIR/stack.json"
}

start_postgres() {
    local bin data=$STACK_DIR/pg/data sock=$STACK_DIR/pg/sock pwfile=$STACK_DIR/pg/pwfile
    bin=$(pg_bindir)
    mkdir -p "$data" "$sock"
    chmod 700 "$data"
    printf '%s\n' "$PG_SUPER_PASSWORD" >"$pwfile"
    chmod 600 "$pwfile"
    if [[ $EUID -eq 0 ]]; then chown -R postgres: "$STACK_DIR/pg"; fi
    local as=()
    [[ $EUID -eq 0 ]] && as=(runuser -u postgres --)
    "${as[@]}" "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth=scram-sha-256 --pwfile="$pwfile" >>"$STACK_DIR/logs/postgres.log" 2>&1 ||
        { tail -n 20 "$STACK_DIR/logs/postgres.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    # Throw-away database: no fsync; loopback TCP and a private socket directory only.
    pg_ctl_as_owner start -D "$data" -w -t 60 -l "$STACK_DIR/pg/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$sock \
            -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >>"$STACK_DIR/logs/postgres.log" 2>&1 ||
        { tail -n 20 "$STACK_DIR/pg/server.log" >&2; die "PostgreSQL did not start"; }
    local pid
    pid=$(head -n 1 "$data/postmaster.pid")
    record_pid postgres "$pid"
    log "started postgres (pid $pid, 127.0.0.1:$PG_PORT)"
    PGPASSWORD=$PG_SUPER_PASSWORD "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 >>"$STACK_DIR/logs/postgres.log" 2>&1 <<EOF || die "creating the airflow database failed"
CREATE ROLE airflow LOGIN PASSWORD '$PG_PASSWORD';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8';
EOF
}

start_redis() {
    mkdir -p "$STACK_DIR/redis"
    # The password goes in a config file, not on the command line (ps shows arguments).
    cat >"$STACK_DIR/redis/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
requirepass $REDIS_PASSWORD
dir $STACK_DIR/redis
save ""
appendonly no
daemonize no
EOF
    chmod 600 "$STACK_DIR/redis/redis.conf"
    start_service redis redis-server "$STACK_DIR/redis/redis.conf"
    local i
    for ((i = 0; i < 100; i++)); do
        if REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
            return 0
        fi
        live_pid redis >/dev/null || { tail -n 20 "$STACK_DIR/logs/redis.log" >&2; die "Redis exited"; }
        sleep 0.1
    done
    die "Redis did not answer PING"
}

start_airflow() {
    # shellcheck disable=SC1091
    source "$STACK_DIR/env.sh"
    mkdir -p "$AIRFLOW_HOME"
    log "airflow db migrate"
    "$AIRFLOW_BIN" db migrate >>"$STACK_DIR/logs/db-migrate.log" 2>&1 ||
        { tail -n 30 "$STACK_DIR/logs/db-migrate.log" >&2; die "airflow db migrate failed"; }
    local name
    for name in "${AIRFLOW_SERVICES[@]}" worker-1 worker-2; do
        start_one "$name"
    done
}

# Start one Airflow service of the stack (env.sh sourced): the same command `up` uses.
start_one() { # name
    case "$1" in
    api-server) start_service api-server "$AIRFLOW_BIN" api-server --host 127.0.0.1 --port "$AIRFLOW__API__PORT" --workers 1 ;;
    scheduler) start_service scheduler "$AIRFLOW_BIN" scheduler --skip-serve-logs ;;
    dag-processor) start_service dag-processor "$AIRFLOW_BIN" dag-processor ;;
    triggerer) start_service triggerer "$AIRFLOW_BIN" triggerer --skip-serve-logs ;;
    worker-[1-9] | worker-[1-9][0-9])
        # Each worker reports its own host name on its task instances (see stack_hostname.py),
        # and has a temp folder of its own.
        mkdir -p "$STACK_DIR/tmp/$1"
        STACK_HOSTNAME=$1 AIRFLOW__CORE__HOSTNAME_CALLABLE=stack_hostname.hostname TMPDIR="$STACK_DIR/tmp/$1" \
            PYTHONPATH="$REPO/tests/stack${PYTHONPATH:+:$PYTHONPATH}" \
            start_service "$1" "$AIRFLOW_BIN" celery worker --celery-hostname "$1@%h" \
            --skip-serve-logs --concurrency "$STACK_WORKER_CONCURRENCY" --without-gossip
        ;;
    *) die "no such service: $1 (api-server, scheduler, dag-processor, triggerer, worker-N)" ;;
    esac
}

# Wait until /api/v2/monitor/health reports every component healthy and the workers (arguments;
# default: every worker with a PID file) answer a Celery ping; fail at once if a process of
# ours exits (one with a PID file: a service stopped or killed on purpose has none).
wait_ready() { # [worker...]
    # shellcheck disable=SC1091
    source "$STACK_DIR/env.sh"
    STACK_DIR=$STACK_DIR STACK_TIMEOUT=$STACK_TIMEOUT STACK_WAIT_WORKERS="$*" "$PY" - <<'EOF'
import json, os, sys, time, urllib.request

stack_dir = os.environ["STACK_DIR"]
info = json.load(open(os.path.join(stack_dir, "stack.json")))
deadline = time.monotonic() + float(os.environ["STACK_TIMEOUT"])


def alive(name):
    try:
        pid, start = open(os.path.join(stack_dir, "pids", name)).read().split()
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19] == start
    except (OSError, ValueError, IndexError):
        return False


def check_alive():
    dead = [s for s in sorted(os.listdir(os.path.join(stack_dir, "pids"))) if not alive(s)]
    if dead:
        sys.exit(f"stack: exited before the stack was ready: {', '.join(dead)} (see {stack_dir}/logs)")


last = None
while True:
    check_alive()
    try:
        with urllib.request.urlopen(info["api_url"] + "/api/v2/monitor/health", timeout=5) as r:
            health = json.load(r)
        states = {k: v.get("status") for k, v in health.items() if isinstance(v, dict)}
    except (OSError, ValueError) as exc:
        states = {"api-server": type(exc).__name__}
    if states != last:
        print(f"stack: health {states}", file=sys.stderr, flush=True)
        last = states
    want = {"metadatabase", "scheduler", "triggerer", "dag_processor"}
    if want <= states.keys() and all(states[k] == "healthy" for k in want):
        break
    if time.monotonic() > deadline:
        sys.exit(f"stack: not healthy after {os.environ['STACK_TIMEOUT']} s: {states}")
    time.sleep(1)

from airflow.providers.celery.executors.celery_executor import app  # noqa: E402

want = set(os.environ["STACK_WAIT_WORKERS"].split()) or {
    s for s in os.listdir(os.path.join(stack_dir, "pids")) if s.startswith("worker-")}
while True:
    check_alive()
    answered = {name.split("@", 1)[0] for reply in app.control.ping(timeout=2) for name in reply}
    if want <= answered:
        print(f"stack: workers answer ping: {sorted(answered)}", file=sys.stderr, flush=True)
        break
    if time.monotonic() > deadline:
        sys.exit(f"stack: workers {sorted(want - answered)} did not answer ping")
    time.sleep(1)
EOF
}

cmd_up() {
    local t0=$SECONDS name
    for name in "${SERVICES[@]}"; do
        if live_pid "$name" >/dev/null; then die "a stack already runs in $STACK_DIR: 'scripts/stack.sh down' first"; fi
    done
    ensure_system_packages
    ensure_python_packages
    [[ -d "$STACK_DAGS_FOLDER" ]] || die "no DAG folder $STACK_DAGS_FOLDER"
    if [[ -e "$STACK_DIR" ]]; then
        [[ -f "$STACK_DIR/$MARKER" ]] || die "$STACK_DIR exists and is not a stack folder: not touching it"
        rm -rf "$STACK_DIR"
    fi
    mkdir -p "$STACK_DIR"/{pids,logs}
    touch "$STACK_DIR/$MARKER"
    chmod 755 "$STACK_DIR" # the postgres user must reach its data folder
    read -r PG_PORT REDIS_PORT API_PORT <<<"$(free_ports 3)"
    PG_SUPER_PASSWORD=$(secret) PG_PASSWORD=$(secret) REDIS_PASSWORD=$(secret)
    ADMIN_PASSWORD=$(secret) JWT_SECRET=$(secret) API_SECRET_KEY=$(secret)
    FERNET_KEY=$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
    printf '{"admin": "%s"}\n' "$ADMIN_PASSWORD" >"$STACK_DIR/passwords.json"
    chmod 600 "$STACK_DIR/passwords.json"
    write_env
    write_info
    # Anything failing from here on stops what was started so far.
    trap 'log "up failed: stopping what was started"; cmd_down' EXIT
    start_postgres
    start_redis
    start_airflow
    wait_ready
    trap - EXIT
    log "stack up in $((SECONDS - t0)) s: API http://127.0.0.1:$API_PORT (admin; password in $STACK_DIR/stack.json)"
    log "airflow CLI against it: source $STACK_DIR/env.sh"
}

cmd_down() {
    set +e # best effort: a failure to stop one service must not leave the others running
    [[ -d "$STACK_DIR/pids" ]] || { log "nothing to stop in $STACK_DIR"; return 0; }
    # Airflow first (all its processes at once, workers added later included), then the broker
    # and the database.
    stop_services $(worker_names) triggerer scheduler dag-processor api-server
    stop_services redis postgres
    # Data goes; logs stay for a look after a failure (the next `up` clears the folder).
    rm -rf "$STACK_DIR/pg" "$STACK_DIR/redis"
    log "stack down (logs kept in $STACK_DIR/logs)"
}

# The workers with a PID file (started by `up` or `start`), in number order.
worker_names() {
    local f
    for f in "$STACK_DIR"/pids/worker-*; do
        [[ -e "$f" ]] && basename "$f"
    done | sort -t- -k2 -n
}

cmd_status() {
    local name pid rc=0 kb
    [[ -d "$STACK_DIR/pids" ]] || { echo "no stack in $STACK_DIR"; return 1; }
    for name in $(printf '%s\n' "${SERVICES[@]}" $(worker_names) | awk '!seen[$0]++'); do
        if pid=$(live_pid "$name"); then
            kb=$(for p in $pid $(descendants "$pid"); do awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null; done |
                awk '{s+=$1} END{print s+0}')
            printf '%-14s running  pid %-8s %6d MiB (PSS, with children)\n' "$name" "$pid" $((kb / 1024))
        else
            printf '%-14s stopped\n' "$name"
            rc=1
        fi
    done
    ((rc == 0)) || return $rc
    STACK_TIMEOUT=5 wait_ready || return 1
}

need_stack() {
    [[ -f "$STACK_DIR/$MARKER" && -f "$STACK_DIR/env.sh" ]] || die "no stack in $STACK_DIR ('up' first)"
}

cmd_start() { # name...
    local name
    need_stack
    # shellcheck disable=SC1091
    source "$STACK_DIR/env.sh"
    for name in "$@"; do
        if live_pid "$name" >/dev/null; then die "$name already runs"; fi
        start_one "$name"
    done
}

cmd_stop() { # name...
    need_stack
    stop_services "$@"
}

# A lost node: SIGNAL at once to the service's process group and to every process below it and
# its group (Airflow's task supervisor puts each task process in a group of its own, which a
# signal to the worker's group alone would miss). Then wait until the leader is gone (30 s at
# most) and forget its PID file. Only processes of this service are signalled: every process
# below a leader started with setsid lives in that session, so their groups are ours.
cmd_kill() { # name [signal]
    local name=$1 sig=${2:-KILL} pid p pg i n=0
    need_stack
    pid=$(live_pid "$name") || die "$name is not running"
    local procs=("$pid")
    for p in $(descendants "$pid"); do procs+=("$p"); done
    local -A groups=()
    for p in "${procs[@]}"; do
        pg=$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ' || true)
        if [[ -n "$pg" ]]; then groups[$pg]=1; fi
    done
    for pg in "${!groups[@]}"; do kill "-$sig" -- "-$pg" 2>/dev/null || true; done
    for p in "${procs[@]}"; do kill "-$sig" "$p" 2>/dev/null && n=$((n + 1)); done
    log "SIG$sig to $name (pid $pid): ${#groups[@]} process groups, $n processes"
    for ((i = 0; i < 300; i++)); do
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
        log "$name (pid $pid) still runs after SIG$sig"
        return 1
    fi
    rm -f "$STACK_DIR/pids/$name"
}

cmd_test() {
    # The driver starts the sandbox, brings the stack up pointed at it, runs the DAGs, asserts
    # and brings the stack down; the trap makes sure nothing keeps running whatever happens.
    trap 'cmd_down' EXIT
    ensure_system_packages
    ensure_python_packages
    # In the background so that a signal reaches this shell at once: pass it on to the driver
    # (it stops the stack in its `finally`), wait for it, then the EXIT trap makes sure.
    STACK_DIR=$STACK_DIR "$PY" "$STACK_DRIVER" "$@" &
    DRIVER_PID=$!
    trap 'kill -TERM "$DRIVER_PID" 2>/dev/null; wait "$DRIVER_PID"; exit 130' INT TERM
    wait "$DRIVER_PID"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
start | stop | kill)
    cmd=$1
    shift
    (($# > 0)) || die "usage: $0 $cmd NAME..."
    "cmd_$cmd" "$@"
    ;;
wait)
    shift
    need_stack
    wait_ready "$@"
    ;;
test)
    shift
    cmd_test "$@"
    ;;
*)
    echo "usage: $0 up | down | status | start NAME... | stop NAME... | kill NAME [SIGNAL] | wait [WORKER...] | test [driver options]" >&2
    exit 2
    ;;
esac
