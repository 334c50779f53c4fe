#!/usr/bin/env bash
# Messages accepted per second, CPU per message and memory per idle
# connection of mxa-smtpd beside a private Postfix, in the same run, on the
# same disk, with the same load generator (Postfix's smtp-source).
#
#   apt-get install -y postfix python3      (smtp-source comes with postfix)
#   cargo build --release -p mxa-smtpd-bin
#   bench/smtpd.sh                          (as root: Postfix needs it)
#
# For each server, each message size (4 KiB, 100 KiB) and each number of
# concurrent sessions (1, 10, 50), smtp-source sends N messages (N4 for
# 4 KiB, N100 for 100 KiB; fewer for 1 session) from loopback to one
# remote recipient; the script reports messages per second (wall time of
# smtp-source) and the server's CPU milliseconds per message. Only
# acceptance is measured: mxa-smtpd queues into its spool and no runner
# runs; Postfix puts every message on hold (check_client_access
# static:HOLD), so its queue manager never touches them. Both acknowledge
# a message only once it is on disk (fsync). After each cell the script
# checks that the server queued exactly the messages sent.
#
# Server CPU: mxa-smtpd is one process (utime+stime of /proc/PID/stat).
# Postfix is master plus its children (smtpd, cleanup, trivial-rewrite,
# ...): the same counters summed over master and every live child, plus
# master's counters for children it reaped, before and after each cell.
#
# Memory: MEM_CONNS (default 1000) idle connections are opened and held
# (each has read its greeting); the script reports the server's resident
# memory growth per connection: mxa-smtpd's VmRSS, Postfix's total RSS of
# its smtpd processes (one per connection).
#
# Environment: MXA_SMTPD (default target/release/mxa-smtpd), N4 (default
# 2000), N100 (default 500), MEM_CONNS, TMPDIR (a real disk, not tmpfs).
set -euo pipefail
cd "$(dirname "$0")/.."
MXA_SMTPD=${MXA_SMTPD:-$PWD/target/release/mxa-smtpd}
N4=${N4:-2000}
N100=${N100:-500}
MEM_CONNS=${MEM_CONNS:-1000}
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[ -x "$MXA_SMTPD" ] || { echo "build it first: cargo build --release -p mxa-smtpd-bin" >&2; exit 1; }
[ -x "$SOURCE" ] || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (a private Postfix needs it)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n 8192

T=$(mktemp -d "${TMPDIR:-/tmp}/mxa-bench-smtpd.XXXXXX")
PF_PID=""
MXA_PID=""
cleanup() {
    [ -n "$MXA_PID" ] && kill "$MXA_PID" 2>/dev/null || true
    [ -n "$PF_PID" ] && postfix -c "$T/pf/etc" stop >/dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
clk=$(getconf CLK_TCK)
# CPU ticks of one process: utime+stime (+ cutime+cstime with $2=all).
ticks() { awk -v all="${2:-}" '{ t=$14+$15; if (all) t+=$16+$17; print t }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# --- mxa-smtpd ---------------------------------------------------------
MXA_PORT=$(free_port)
mkdir -p "$T/mxa/spool"
chown nobody "$T/mxa/spool"; chmod 2770 "$T/mxa/spool"; chmod 755 "$T" "$T/mxa"
cat > "$T/mxa/mxa.toml" <<EOF
hostname = "mx.bench.test"
domains = ["bench.test"]
spool = "spool"
user = "nobody"
[smtpd]
listen = ["127.0.0.1:$MXA_PORT"]
submission = []
submissions = []
max_connections = $((MEM_CONNS + 100))
[dns]
nameservers = ["127.0.0.1:9"]
EOF
"$MXA_SMTPD" -c "$T/mxa/mxa.toml" 2>"$T/mxa/log" &
MXA_PID=$!
wait_port "$MXA_PORT"

# --- Postfix -----------------------------------------------------------
PF_PORT=$(free_port)
mkdir -p "$T/pf/etc" "$T/pf/queue"  # postfix makes data/ itself, owned by postfix
cat > "$T/pf/etc/main.cf" <<EOF
compatibility_level = 3.6
config_directory = $T/pf/etc
queue_directory = $T/pf/queue
data_directory = $T/pf/data
maillog_file = $T/pf/maillog
maillog_file_prefixes = $T
myhostname = mx.pf.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
smtpd_client_restrictions = check_client_access static:HOLD
default_process_limit = $((MEM_CONNS + 100))
smtpd_client_connection_count_limit = 0
max_use = 100000
max_idle = 600
import_environment = MAIL_CONFIG TZ LANG=C
EOF
sed -n '/^smtp .*inet/!p' /etc/postfix/master.cf > "$T/pf/etc/master.cf"
echo "127.0.0.1:$PF_PORT inet n - n - - smtpd" >> "$T/pf/etc/master.cf"
touch -d '-1 min' "$T/pf/etc/main.cf" "$T/pf/etc/master.cf"
postfix -c "$T/pf/etc" start >/dev/null
wait_port "$PF_PORT"
PF_PID=$(head -1 "$T/pf/queue/pid/master.pid" | tr -d ' ')

pf_ticks() {
    local t
    t=$(ticks "$PF_PID" all)
    for c in $(pgrep -P "$PF_PID"); do t=$((t + $(ticks "$c"))); done
    echo "$t"
}
mxa_ticks() { ticks "$MXA_PID"; }
mxa_count() { { find "$T/mxa/spool/env" -type f 2>/dev/null || true; } | wc -l; }
pf_count() { { find "$T/pf/queue/hold" -type f 2>/dev/null || true; } | wc -l; }

run_cell() { # server port sessions size messages
    local name=$1 port=$2 s=$3 size=$4 n=$5 before after t0 t1 c0 c1
    before=$("${name}_count"); c0=$("${name}_ticks")
    t0=$(date +%s.%N)
    "$SOURCE" -s "$s" -m "$n" -l "$size" -f bench@remote.test -t user@dest.test "127.0.0.1:$port"
    t1=$(date +%s.%N)
    # Postfix's cleanup may finish writing just after the last 250.
    sleep 0.3
    c1=$("${name}_ticks"); after=$("${name}_count")
    if [ $((after - before)) -ne "$n" ]; then
        echo "$name queued $((after - before)) of $n messages" >&2; exit 1
    fi
    awk -v n="$n" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v clk="$clk" -v name="$name" -v s="$s" -v size="$size" \
        'BEGIN { printf "%-9s %7s %9d %8d %10.0f %12.2f\n", name, size, s, n, n/(t1-t0), c/clk*1000/n }'
}

echo "== acceptance: smtp-source, messages/s and server CPU ms per message"
printf "%-9s %7s %9s %8s %10s %12s\n" server size sessions messages "msg/s" "cpu ms/msg"
for size in 4096 102400; do
    n=$N4; [ "$size" = 102400 ] && n=$N100
    for s in 1 10 50; do
        m=$n; [ "$s" = 1 ] && m=$((n / 4))
        run_cell mxa "$MXA_PORT" "$s" "$size" "$m"
        run_cell pf "$PF_PORT" "$s" "$size" "$m"
    done
done

echo "== memory: $MEM_CONNS idle connections"
hold() { # port: opens MEM_CONNS connections, prints "ready", holds until stdin closes
    python3 - "$1" "$MEM_CONNS" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(60)
    if not s.recv(512).startswith(b"220"):
        sys.exit("no greeting")
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
PY
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
pf_smtpd_rss() { local t=0 p; for p in $(pgrep -P "$PF_PID" -x smtpd); do t=$((t + $(rss_kib "$p"))); done; echo "$t"; }
measure_mem() { # name port rss-command
    local r0 r1 fifo="$T/fifo.$1"
    r0=$($3)
    mkfifo "$fifo"
    hold "$2" < "$fifo" > "$T/hold.$1" &
    local hp=$!
    exec 4>"$fifo"
    for _ in $(seq 600); do grep -q ready "$T/hold.$1" 2>/dev/null && break; sleep 0.1; done
    r1=$($3)
    exec 4>&-
    wait "$hp" || true
    awk -v a="$r0" -v b="$r1" -v n="$MEM_CONNS" -v name="$1" \
        'BEGIN { printf "%-9s rss before %8d KiB, with %d connections %8d KiB: %.1f KiB per connection\n", name, a, n, b, (b-a)/n }'
}
measure_mem mxa "$MXA_PORT" "rss_kib $MXA_PID"
measure_mem pf "$PF_PORT" pf_smtpd_rss
