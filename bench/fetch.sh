#!/usr/bin/env bash
# Messages per second and peak memory of mxa-fetch beside fetchmail and
# getmail6, fetching the same N messages over POP3 and over IMAP from the
# same private Dovecot into a Maildir, in the same run on the same disk.
#
#   apt-get install -y dovecot-core dovecot-pop3d dovecot-imapd fetchmail getmail6 mpop maildrop time python3
#   cargo build --release -p mxa-fetch-bin
#   bench/fetch.sh [N]              (default N=2000; run as root)
#
# N messages of mixed sizes (fixed seed: 70% 2-8 KiB, 25% 20-100 KiB,
# 5% 0.5-2 MiB, as bench/deliver.sh) are made once. For each protocol and
# each client, the Dovecot Maildir is filled with them (and indexed by
# `doveadm mailbox status`, so no client pays for Dovecot's first look),
# then the client fetches them all over TLS on connect (pop3s, imaps: the
# one mode all three share), deleting them on the server, into a fresh
# Maildir. Reported: wall time, messages/s, MiB/s, peak RSS (GNU time %M of
# the client's process; an MDA's processes are children and not counted),
# and mxa-fetch's ratios. Each run must leave exactly N files in new/ and
# the server's Maildir empty, or the script fails.
#
# The clients and how each delivers:
#   mxa-fetch --maildir      in-process, durable (file and new/ fsync'd),
#                            one state-file fdatasync per message
#   mxa-fetch --mda maildrop one maildrop process per message
#   fetchmail mda maildrop   one maildrop process per message (fetchmail
#                            has no Maildir writer of its own), `fetchall
#                            nokeep`, certificates not checked
#   getmail6 Maildir         in-process (getmail's own Maildir writer),
#                            `delete = true`, certificates not checked
# maildrop runs in manual mode with the filter `to "MAILDIR/"`.
#
# A client other than mxa-fetch that fails or takes longer than
# BENCH_TIMEOUT seconds (default 900) is reported as FAILED and left out of
# the ratios; mxa-fetch failing fails the script.
#
# Environment: MXA_FETCH (the binary, default target/release/mxa-fetch),
# TMPDIR (where the temporary folder goes; a real disk, not tmpfs).
# Every client runs as nobody (setpriv), with its files in a folder nobody
# owns: mxa-fetch refuses to read the network as root, and the others are
# measured the same way.
#
# This is a benchmark, never run as a test. It installs nothing.

set -euo pipefail

n=${1:-2000}
case $n in '' | *[!0-9]*)
    echo "usage: $0 [N]" >&2
    exit 64
    ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
mxa=${MXA_FETCH:-$root/target/release/mxa-fetch}

missing=()
need() {
    if [[ $1 == */* ]]; then [[ -x $1 ]] || missing+=("$1 ($2)"); else
        command -v "$1" >/dev/null || missing+=("$1 ($2)")
    fi
}
need /usr/sbin/dovecot "Debian packages dovecot-core dovecot-pop3d dovecot-imapd"
need doveadm "Debian package dovecot-core"
need fetchmail "Debian package fetchmail"
need getmail "Debian package getmail6"
need maildrop "Debian package maildrop"
need openssl "Debian package openssl"
need /usr/bin/time "GNU time: Debian package time"
need python3 "Debian package python3"
need "$mxa" "cargo build --release -p mxa-fetch-bin"
if ((${#missing[@]})); then
    echo "$0: missing:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 69
fi
if (($(id -u) != 0)); then
    echo "$0: run as root: the private Dovecot's master needs it (mail is read as nobody)" >&2
    exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mxa-fetch-bench.XXXXXX")
chmod 755 "$work"
dpid=
cleanup() {
    if [[ -n $dpid ]]; then
        kill -TERM "$dpid" 2>/dev/null || true
        wait "$dpid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pop3s=$(port)
imaps=$(port)
user=bench@example.test
pass="bench password"

# --- a private Dovecot, as tests/src/dovecot.rs runs it -----------------------
mkdir -p "$work"/{run,state,home,mail,messages}
chown nobody:nogroup "$work/home" "$work/mail"
# A private CA (for mxa-fetch's --ca) and the server's certificate.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mxa bench CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$work/ext"
openssl x509 -req -in "$work/cert.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/cert.pem" 2>/dev/null
printf '%s:{PLAIN}%s\n' "$user" "$pass" >"$work/passwd"
chmod 644 "$work/passwd"
dh=
[[ -f /usr/share/dovecot/dh.pem ]] && dh="ssl_dh = </usr/share/dovecot/dh.pem"
cat >"$work/dovecot.conf" <<EOF
base_dir = $work/run
state_dir = $work/state
log_path = $work/dovecot.log
instance_name = mxa-bench-$pop3s
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <$work/cert.pem
ssl_key = <$work/key.pem
$dh
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$work/home/%u
}
mail_location = maildir:$work/mail/%u
first_valid_uid = 1
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = $imaps
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = $pop3s
    ssl = yes
  }
}
EOF
/usr/sbin/dovecot -F -c "$work/dovecot.conf" &
dpid=$!
for p in $pop3s $imaps; do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        sleep 0.1
    done
done
md="$work/mail/$user"
mkdir -p "$md"/{tmp,new,cur}
chown -R nobody:nogroup "$md"

# --- the messages --------------------------------------------------------------
python3 - "$n" "$work/messages" <<'PY'
import base64, os, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(20261123)
WORDS = ("the quick brown fox jumps over lazy dog mail server delivery "
         "maildir queue message header body line test bench").split()
total = 0
for i in range(n):
    r = rng.random()
    if r < 0.70:
        size = rng.randint(2 << 10, 8 << 10)
    elif r < 0.95:
        size = rng.randint(20 << 10, 100 << 10)
    else:
        size = rng.randint(512 << 10, 2 << 20)
    head = (f"Return-Path: <sender@example.org>\n"
            f"From: Sender <sender@example.org>\nTo: User <bench@example.test>\n"
            f"Subject: benchmark message {i}\nDate: Mon, 23 Nov 2026 18:00:00 +0000\n"
            f"Message-ID: <bench.{i}@example.org>\nMIME-Version: 1.0\n")
    if size < 16 << 10:
        body, left = [], size - len(head) - 40
        while left > 0:
            line = " ".join(rng.choice(WORDS) for _ in range(11)) + "\n"
            body.append(line)
            left -= len(line)
        data = (head + "Content-Type: text/plain\n\n" + "".join(body)).encode()
    else:
        blob = base64.encodebytes(rng.randbytes(max(0, (size - len(head) - 400) * 3 // 4)))
        data = (head + 'Content-Type: multipart/mixed; boundary="b1"\n\n'
                "--b1\nContent-Type: text/plain\n\nAttached.\n"
                "--b1\nContent-Type: application/octet-stream\n"
                "Content-Transfer-Encoding: base64\n\n").encode() + blob + b"--b1--\n"
    with open(os.path.join(out, f"{1700000000 + i}.M{i}P1.bench"), "wb") as f:
        f.write(data)
    total += len(data)
print(f"messages     {n}, {total / 2**20:.1f} MiB (70% 2-8 KiB, 25% 20-100 KiB, 5% 0.5-2 MiB; seed 20261123)")
PY
mib=$(du -sm --apparent-size "$work/messages" | cut -f1)

echo "mxa-fetch    $(grep -m1 '^version' "$root/Cargo.toml" | cut -d'"' -f2) (git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $mxa)"
echo "fetchmail    $(fetchmail --version 2>/dev/null | grep -m1 release | sed 's/.*release //')"
echo "getmail6     $(getmail --version 2>&1 | head -1)"
echo "dovecot      $(dovecot --version)"
echo "kernel       $(uname -r), $(nproc) CPUs; disk: $(findmnt -n -f -o SOURCE,FSTYPE -T "$work" 2>/dev/null || true)"

fill() { # puts the N messages into the server's Maildir, indexed
    rm -f "$md"/new/* "$md"/cur/* "$md"/dovecot* 2>/dev/null || true
    cp "$work"/messages/* "$md/new/"
    chown nobody:nogroup "$md"/new/*
    doveadm -c "$work/dovecot.conf" mailbox status -u "$user" "messages vsize" INBOX >/dev/null
}

# Every client runs as nobody (mxa-fetch refuses to read the network as
# root), with its files in $u, which nobody owns.
u="$work/u"
mkdir -p "$u"
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$u" XDG_STATE_HOME="$u/state")

declare -A rate rss
limit=${BENCH_TIMEOUT:-900} # seconds a client may take
run() { # run NAME PROTO CMD... : times one client, checks what it left
    local name=$1 proto=$2
    shift 2
    local dest="$u/dest"
    rm -rf "$dest" "$u/state" "$u/getmail" "$u/fetchids"
    mkdir -p "$dest"/{tmp,new,cur} "$u/getmail"
    chown -R nobody:nogroup "$u"
    fill
    sync
    local t0 t1
    t0=$(date +%s.%N)
    if ! timeout "$limit" /usr/bin/time -f '%M' -o "$work/time" "${as_nobody[@]}" "$@" >"$work/out" 2>&1; then
        # mxa-fetch must work; another client's failure is reported as a
        # row (getmail6 6.18 over IMAP stops now and then with "waiting
        # child pid timed out" after a few hundred messages).
        printf '%-26s %-5s FAILED: %s\n' "$name" "$proto" "$(tail -1 "$work/out")"
        rate[$name/$proto]=0
        [[ $name == mxa-fetch* ]] && exit 1
        return 0
    fi
    t1=$(date +%s.%N)
    local got left
    got=$(find "$dest/new" "$dest/cur" -type f | wc -l)
    left=$(find "$md/new" "$md/cur" -type f | wc -l)
    if ((got != n || left != 0)); then
        printf '%-26s %-5s FAILED: %s of %s delivered, %s left on the server\n' "$name" "$proto" "$got" "$n" "$left"
        rate[$name/$proto]=0
        [[ $name == mxa-fetch* ]] && exit 1
        return 0
    fi
    local secs kb
    secs=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    kb=$(tail -1 "$work/time")
    rate[$name/$proto]=$(python3 -c "print(f'{$n / ($t1 - $t0):.0f}')")
    rss[$name/$proto]=$((kb / 1024))
    printf '%-26s %-5s %7ss %7s msg/s %7s MiB/s %6s MiB peak RSS\n' "$name" "$proto" "$secs" \
        "${rate[$name/$proto]}" "$(python3 -c "print(f'{$mib / ($t1 - $t0):.1f}')")" "${rss[$name/$proto]}"
}

echo
printf '%-26s %-5s %8s %13s %13s %19s\n' client proto wall rate throughput memory
for proto in pop3 imap; do
    if [[ $proto == pop3 ]]; then port=$pop3s; else port=$imaps; fi
    url="${proto}s://bench%40example.test@127.0.0.1:$port"
    export MXA_PASSWORD=$pass
    printf 'to "%s/"\n' "$u/dest" >"$u/filter"
    chmod 600 "$u/filter" # maildrop wants it so, owned by its user
    run "mxa-fetch --maildir" $proto "$mxa" -q "$url" --ca "$work/ca.pem" --maildir "$u/dest"
    run "mxa-fetch --mda maildrop" $proto "$mxa" -q "$url" --ca "$work/ca.pem" \
        --mda "maildrop $u/filter"
    cat >"$u/fetchmailrc" <<EOF
set no bouncemail
poll 127.0.0.1 service $port protocol $proto
  user "$user" there password "$pass" is nobody here
  ssl no sslcertck
  fetchall nokeep
  mda "maildrop $u/filter"
EOF
    chmod 600 "$u/fetchmailrc"
    run "fetchmail mda maildrop" $proto fetchmail -s -f "$u/fetchmailrc" --idfile "$u/fetchids" --pidfile "$u/fetchmail.pid"
    # mpop (POP3 only), through the same maildrop, certificate unchecked
    # as fetchmail's above.
    if [[ $proto == pop3 ]] && command -v mpop >/dev/null; then
        cat >"$u/mpoprc" <<EOF
account bench
host 127.0.0.1
port $port
tls on
tls_starttls off
tls_certcheck off
user $user
password $pass
keep off
only_new off
uidls_file $u/mpop-uidls
delivery mda "maildrop $u/filter"
EOF
        chmod 600 "$u/mpoprc"
        run "mpop mda maildrop" $proto mpop -q -C "$u/mpoprc" bench
    fi
    if [[ $proto == pop3 ]]; then kind=SimplePOP3SSLRetriever; else kind=SimpleIMAPSSLRetriever; fi
    cat >"$u/getmailrc" <<EOF
[retriever]
type = $kind
server = 127.0.0.1
port = $port
username = $user
password = $pass
$([[ $proto == imap ]] && echo 'mailboxes = ("INBOX",)')

[destination]
type = Maildir
path = $u/dest/

[options]
delete = true
read_all = true
verbose = 0
EOF
    run "getmail6 Maildir" $proto getmail --getmaildir="$u/getmail" --rcfile="$u/getmailrc"
done

echo
for proto in pop3 imap; do
    m=${rate[mxa-fetch --maildir/$proto]}
    d=${rate[mxa-fetch --mda maildrop/$proto]}
    f=${rate[fetchmail mda maildrop/$proto]}
    g=${rate[getmail6 Maildir/$proto]}
    p=${rate[mpop mda maildrop/$proto]:-0}
    python3 -c "
r = lambda a, b: f'{a/b:.1f}x' if b else 'n/a'
print(f'$proto: mxa-fetch --maildir is {r($m, $f)} fetchmail+maildrop, {r($m, $p)} mpop+maildrop and {r($m, $g)} getmail6; through maildrop, mxa-fetch is {r($d, $f)} fetchmail and {r($d, $p)} mpop')"
done
