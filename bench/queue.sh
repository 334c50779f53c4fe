#!/usr/bin/env bash
# Relay rate of the queue runner: N queued messages relayed to Postfix's
# smtp-sink on loopback by mxa-queue and by a private Postfix, in the same
# run, on the same disk, to the same sink.
#
#   apt-get install -y postfix python3      (smtp-sink, smtp-source come with postfix)
#   cargo build --release -p mxa-smtpd-bin -p mxa-queue-bin
#   bench/queue.sh [N]                      (as root: Postfix needs it; default N=10000)
#
# Both queues are filled the same way, with nothing running that would
# deliver: smtp-source sends N messages of SIZE bytes (default 4096) over
# 10 sessions to user@dest.test, into mxa-smtpd (no runner running) and
# into Postfix (every message put on hold by check_client_access
# static:HOLD). Then the clock starts and each one relays to the same
# smtp-sink, one after the other:
#
#   mxa:     mxa-queue flush, run as `nobody` (as `mxa-queue run` runs
#            under `mxa up`), dest.test routed to the sink by [queue] routes;
#            the clock stops when flush exits with an empty queue.
#   Postfix: postsuper -H ALL then postqueue -f, dest.test sent to the sink
#            by transport_maps; the clock stops when no queue file is left.
#
# Each is run with its default concurrency. The script prints messages per
# second until the queue is empty, CPU seconds per 1,000 messages (mxa:
# utime+stime of flush and its children, from /usr/bin/time or bash's
# times; Postfix: master and every child, live or reaped), and the
# messages the sink counted, which must be N for each.
#
# Environment: MXA_BIN (default target/release), SIZE, TMPDIR (a real disk,
# not tmpfs).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
SIZE=${SIZE:-4096}
MXA_BIN=${MXA_BIN:-$PWD/target/release}
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
for p in mxa-smtpd mxa-queue; do
    [ -x "$MXA_BIN/$p" ] || { echo "build it first: cargo build --release -p mxa-smtpd-bin -p mxa-queue-bin" >&2; exit 1; }
done
[ -x "$SOURCE" ] && [ -x "$SINK" ] || { echo "smtp-source/smtp-sink missing: apt-get install postfix" >&2; exit 1; }
command -v setpriv >/dev/null || { echo "setpriv missing: apt-get install util-linux" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (a private Postfix needs it)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n 8192

T=$(mktemp -d "${TMPDIR:-/tmp}/mxa-bench-queue.XXXXXX")
chmod 755 "$T"
PF_PID=""
MXA_PID=""
SINK_PID=""
cleanup() {
    [ -n "${KEEP:-}" ] && { echo "kept $T" >&2; return; }
    [ -n "$MXA_PID" ] && kill "$MXA_PID" 2>/dev/null || true
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    [ -n "$PF_PID" ] && postfix -c "$T/pf/etc" stop >/dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
clk=$(getconf CLK_TCK)
ticks() { awk -v all="${2:-}" '{ t=$14+$15; if (all) t+=$16+$17; print t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
now() { date +%s.%N; }

# --- the sink: counts the messages it accepted ---------------------------
SINK_PORT=$(free_port)
"$SINK" -u nobody -h sink.bench.test -c "127.0.0.1:$SINK_PORT" 1000 > "$T/sink.out" 2>&1 &
SINK_PID=$!
wait_port "$SINK_PORT"
# smtp-sink -c rewrites one line of counters with \r; the "msg" count is
# messages (mesg=) that reached ".".
sink_msgs() { tr '\r' '\n' < "$T/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | awk '{ print $1 + 0 } END { if (NR == 0) print 0 }'; }

# --- mxa: mxa-smtpd fills the spool, mxa-queue flush empties it ----------
MXA_PORT=$(free_port)
mkdir -p "$T/mxa/spool"
chown nobody "$T/mxa/spool"; chmod 2770 "$T/mxa/spool"; chmod 755 "$T/mxa"
cat > "$T/mxa/mxa.toml" <<EOF
hostname = "mx.bench.test"
domains = ["bench.test"]
spool = "spool"
user = "nobody"
[smtpd]
listen = ["127.0.0.1:$MXA_PORT"]
submission = []
submissions = []
[queue]
routes = { "dest.test" = "127.0.0.1:$SINK_PORT" }
[dns]
nameservers = ["127.0.0.1:9"]
EOF
"$MXA_BIN/mxa-smtpd" -c "$T/mxa/mxa.toml" 2>"$T/mxa/smtpd.log" &
MXA_PID=$!
wait_port "$MXA_PORT"

# --- Postfix: its smtpd fills the hold queue -----------------------------
PF_PORT=$(free_port)
mkdir -p "$T/pf/etc" "$T/pf/queue"
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
transport_maps = inline:{dest.test=smtp:[127.0.0.1]:$SINK_PORT}
smtp_tls_security_level = none
import_environment = MAIL_CONFIG TZ LANG=C
EOF
sed -n '/^smtp .*inet/!p' /etc/postfix/master.cf > "$T/pf/etc/master.cf"
echo "127.0.0.1:$PF_PORT inet n - n - - smtpd" >> "$T/pf/etc/master.cf"
touch -d '-1 min' "$T/pf/etc/main.cf" "$T/pf/etc/master.cf"
postfix -c "$T/pf/etc" start >/dev/null
wait_port "$PF_PORT"
PF_PID=$(head -1 "$T/pf/queue/pid/master.pid" | tr -d ' ')
pf_ticks() {
    local t c
    t=$(ticks "$PF_PID" all)
    for c in $(pgrep -P "$PF_PID"); do t=$((t + $(ticks "$c"))); done
    echo "$t"
}
pf_left() { { find "$T/pf/queue/"{incoming,active,deferred,hold,maildrop} -type f 2>/dev/null || true; } | wc -l; }
mxa_left() { { find "$T/mxa/spool/env" -type f 2>/dev/null || true; } | wc -l; }

echo "== filling both queues with $N messages of $SIZE bytes"
"$SOURCE" -s 10 -m "$N" -l "$SIZE" -f bench@remote.test -t user@dest.test "127.0.0.1:$MXA_PORT"
"$SOURCE" -s 10 -m "$N" -l "$SIZE" -f bench@remote.test -t user@dest.test "127.0.0.1:$PF_PORT"
kill "$MXA_PID"; wait "$MXA_PID" 2>/dev/null || true; MXA_PID=""
for _ in $(seq 100); do [ "$(pf_left)" -ge "$N" ] && break; sleep 0.1; done
echo "mxa queued $(mxa_left), Postfix held $(pf_left)"
[ "$(mxa_left)" = "$N" ] && [ "$(pf_left)" = "$N" ] || { echo "a queue does not hold $N messages" >&2; exit 1; }
sync

report() { # name seconds cpu-seconds sunk
    awk -v name="$1" -v t="$2" -v c="$3" -v got="$4" -v n="$N" \
        'BEGIN { printf "%-8s %8d %10.1f %10.0f %16.2f %8d\n", name, n, t, n/t, c*1000/n, got }'
}
printf "%-8s %8s %10s %10s %16s %8s\n" relay messages "seconds" "msg/s" "cpu s/1000 msg" "sunk"

# mxa: one flush as nobody; its CPU from its rusage (children included).
s0=$(sink_msgs)
t0=$(now)
set +e
times_out=$( { TIMEFORMAT='%U %S'; time setpriv --reuid nobody --regid nogroup --clear-groups \
    "$MXA_BIN/mxa-queue" -c "$T/mxa/mxa.toml" flush 2>"$T/mxa/queue.log"; } 2>&1 )
rc=$?
set -e
t1=$(now)
[ "$rc" = 0 ] || { echo "mxa-queue flush exited $rc; $(mxa_left) left; log: $T/mxa/queue.log" >&2; tail -5 "$T/mxa/queue.log" >&2; exit 1; }
sleep 0.5
mxa_cpu=$(echo "$times_out" | tail -1 | awk '{ print $1 + $2 }')
report mxa "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$mxa_cpu" $(( $(sink_msgs) - s0 ))

# Postfix: release the held messages and flush; done when no queue file is left.
s0=$(sink_msgs)
c0=$(pf_ticks)
t0=$(now)
postsuper -c "$T/pf/etc" -H ALL >/dev/null 2>&1
postqueue -c "$T/pf/etc" -f
while [ "$(pf_left)" -gt 0 ]; do sleep 0.05; done
t1=$(now)
c1=$(pf_ticks)
sleep 0.5
report postfix "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$(awk -v a="$c0" -v b="$c1" -v k="$clk" 'BEGIN { print (b - a) / k }')" $(( $(sink_msgs) - s0 ))
