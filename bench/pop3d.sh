#!/usr/bin/env bash
# POP3 retrieval: mxa-pop3d beside Dovecot's POP3 server, serving the same
# Maildir content to the same client in the same run.
#
#   apt-get install -y dovecot-core dovecot-pop3d python3
#   cargo build --release -p mxa-pop3d-bin
#   sudo bench/pop3d.sh [N] [ROUNDS]     (default N=2000, ROUNDS=3)
#
# N messages of mixed sizes (fixed seed: 80% 2-8 KiB, 18% 20-100 KiB,
# 2% 0.5-1 MiB, about 60 MiB for N=2000) are made once, as mxa-deliver
# files them (LF line ends; names with ,S= and ,W=). For each round and
# each server (each first in every other round), a fresh copy goes into
# that server's own Maildir under new/, and one client session (Python's
# poplib, plain POP3 on loopback) logs in, STATs, then RETRs and DELEs
# every message, and QUITs. The script reports
# for each: the wall time of the session (messages/s, MiB/s) and the CPU
# time (user + system) the server's processes used during it, read from
# /proc/PID/stat: for mxa-pop3d its one process; for Dovecot the master,
# every process under it, and the children it reaped (the per-session pop3
# process exits at QUIT). The first login of a session moves new/ to cur/
# (both servers do) and, for Dovecot, builds its index and uidlist: both
# are part of serving a mailbox the first time, and both are measured.
# A round fails if a Maildir is not empty after the session or a message
# came back with other bytes than were stored (CRLF made LF).
#
# Both servers run from a private config in a temporary folder, on loopback
# ports, as root dropping to BENCH_USER (default nobody) for the mailbox:
#   mxa-pop3d -c WORK/mxa/mxa.toml   (users file: the address, a $6$ hash,
#              the Maildir; user = BENCH_USER; no TLS)
#   dovecot -F -c WORK/dovecot/dovecot.conf   (protocols = pop3, ssl = no,
#              passdb passwd-file with the same $6$ hash, userdb static with
#              BENCH_USER's uid/gid, mail_location = maildir:..., every other
#              setting Dovecot's default)
#
# Environment: MXA_POP3D (the binary, default target/release/mxa-pop3d),
# BENCH_USER, TMPDIR. This is a benchmark, never run as a test. It installs
# nothing.

set -euo pipefail

n=${1:-2000}
rounds=${2:-3}
case $n$rounds in *[!0-9]*)
    echo "usage: $0 [N] [ROUNDS]" >&2
    exit 64
    ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
mxa=${MXA_POP3D:-$root/target/release/mxa-pop3d}

missing=()
need() {
    if [[ $1 == */* ]]; then [[ -x $1 ]] || missing+=("$1 ($2)"); else
        command -v "$1" >/dev/null || missing+=("$1 ($2)")
    fi
}
need /usr/sbin/dovecot "Debian packages dovecot-core dovecot-pop3d"
need /usr/lib/dovecot/pop3 "Debian package dovecot-pop3d"
need python3 "Debian package python3"
need openssl "Debian package openssl"
need "$mxa" "cargo build --release -p mxa-pop3d-bin"
if ((${#missing[@]})); then
    echo "$0: missing:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 69
fi
if (($(id -u) != 0)); then
    echo "$0: run as root: Dovecot's master must be root to run its services" >&2
    exit 77
fi
run_user=${BENCH_USER:-nobody}
if [[ $(id -u "$run_user" 2>/dev/null) == 0 || -z $(id -u "$run_user" 2>/dev/null) ]]; then
    echo "$0: BENCH_USER must be an existing account other than root" >&2
    exit 64
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mxa-pop3d-bench.XXXXXX")
chmod 711 "$work"
trap 'rm -rf -- "$work"' EXIT

echo "mxa-pop3d  $(grep -m1 '^version' "$root/Cargo.toml" | cut -d'"' -f2)" \
    "(git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $mxa)"
echo "dovecot    $(dovecot --version)"
echo "client     python $(python3 -c 'import platform; print(platform.python_version())') poplib;" \
    "kernel $(uname -r), $(nproc) CPUs"

hash=$(openssl passwd -6 -salt benchsaltbench secret)
python3 - "$n" "$rounds" "$work" "$mxa" "$run_user" "$hash" <<'PY'
import os, poplib, pwd, random, shutil, signal, statistics, subprocess, sys, time

n, rounds, work, mxa, run_user, pwhash = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
sys.stdout.reconfigure(line_buffering=True)
pw = pwd.getpwnam(run_user)
uid, gid = pw.pw_uid, pw.pw_gid
USER, PASSWORD = "user@example.org", "secret"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what):
    import socket
    for _ in range(400):
        if proc.poll() is not None:
            sys.exit(f"pop3d.sh: {what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"pop3d.sh: {what} does not listen on {port}")


# --- the messages -----------------------------------------------------------
rng = random.Random(20261123)
WORDS = ("the quick brown fox jumps over lazy dog mail server pop3 retrieval "
         "maildir message header body line test bench .leading dot").split()
msgs = []
for i in range(n):
    r = rng.random()
    size = (rng.randint(2 << 10, 8 << 10) if r < 0.80 else
            rng.randint(20 << 10, 100 << 10) if r < 0.98 else
            rng.randint(512 << 10, 1 << 20))
    head = (f"Return-Path: <sender@example.org>\nDelivered-To: {USER}\n"
            f"From: Sender <sender@example.org>\nTo: {USER}\n"
            f"Subject: benchmark message {i}\nMessage-ID: <bench.{i}@example.org>\n\n")
    body, left = [], size - len(head)
    while left > 0:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 13))) + "\n"
        if rng.random() < 0.02:
            line = "." + line  # dot-stuffing has work to do
        body.append(line)
        left -= len(line)
    msgs.append((head + "".join(body)).encode())
total = sum(map(len, msgs))
print(f"messages   {n}, {total / 2**20:.1f} MiB (80% 2-8 KiB, 18% 20-100 KiB, 2% 0.5-1 MiB; seed 20261123)")


def fill(maildir):
    if os.path.exists(maildir):
        shutil.rmtree(maildir)
    for d in ("", "tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    t0 = 1_763_900_000
    for i, m in enumerate(msgs):
        w = len(m) + m.count(b"\n")
        name = f"{t0 + i}.M{i}P4242Q{i}R{rng.getrandbits(64):016x}.bench,S={len(m)},W={w}"
        with open(os.path.join(maildir, "new", name), "wb") as f:
            f.write(m)
    for dirpath, dirs, files in os.walk(maildir):
        os.chown(dirpath, uid, gid)
        os.chmod(dirpath, 0o700)
        for f in files:
            os.chown(os.path.join(dirpath, f), uid, gid)
            os.chmod(os.path.join(dirpath, f), 0o600)


def proc_times(pid):
    """utime+stime and cutime+cstime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14.
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return (ut + st) / TICK, (cut + cst) / TICK


def tree_cpu(root):
    """CPU of root, of every live process under it, and of the children
    it reaped."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(p))
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        try:
            own, reaped = proc_times(pid)
        except OSError:
            continue
        total += own + (reaped if pid == root else 0.0)
        stack.extend(children.get(pid, []))
    return total


def session(port, maildir):
    t0 = time.perf_counter()
    p = poplib.POP3("127.0.0.1", port, timeout=120)
    p.user(USER)
    p.pass_(PASSWORD)
    count, _ = p.stat()
    if count != n:
        sys.exit(f"pop3d.sh: STAT says {count}, not {n}")
    got = []
    for i in range(1, count + 1):
        _, lines, _ = p.retr(i)
        got.append(b"\n".join(lines) + b"\n")
        p.dele(i)
    p.quit()
    wall = time.perf_counter() - t0
    if sorted(got) != sorted(msgs):
        sys.exit("pop3d.sh: the messages retrieved differ from those stored")
    left = sum(len(os.listdir(os.path.join(maildir, d))) for d in ("new", "cur"))
    if left:
        sys.exit(f"pop3d.sh: {left} messages left in {maildir} after QUIT")
    return wall


# --- mxa-pop3d ---------------------------------------------------------------
mdir = os.path.join(work, "mxa")
os.makedirs(mdir)
mx_port = free_port()
mx_maildir = os.path.join(mdir, "Maildir")
with open(os.path.join(mdir, "users"), "w") as f:
    f.write(f"{USER}:{pwhash}:{mx_maildir}\n")
with open(os.path.join(mdir, "mxa.toml"), "w") as f:
    f.write(f'hostname = "bench.example.org"\ndomains = ["example.org"]\nusers = "users"\n'
            f'spool = "spool"\nmailroot = "mail"\nuser = "{run_user}"\n\n'
            f'[smtpd]\nlisten = []\nsubmission = []\nsubmissions = []\n\n'
            f'[pop3d]\nlisten = ["127.0.0.1:{mx_port}"]\npop3s = []\n')
os.chmod(mdir, 0o711)

# --- Dovecot ----------------------------------------------------------------
ddir = os.path.join(work, "dovecot")
for d in ("", "run", "state", "home"):
    os.makedirs(os.path.join(ddir, d), exist_ok=True)
os.chmod(ddir, 0o755)
os.chown(os.path.join(ddir, "home"), uid, gid)
dv_port = free_port()
dv_maildir = os.path.join(ddir, "Maildir")
with open(os.path.join(ddir, "passwd"), "w") as f:
    f.write(f"{USER}:{{SHA512-CRYPT}}{pwhash}\n")
conf = os.path.join(ddir, "dovecot.conf")
with open(conf, "w") as f:
    f.write(f"""# Written by bench/pop3d.sh
base_dir = {ddir}/run
state_dir = {ddir}/state
log_path = {ddir}/log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {ddir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={ddir}/home
}}
mail_location = maildir:{dv_maildir}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {dv_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""")

procs = []


def stop_all(*_):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    subprocess.call(["dovecot", "-c", conf, "stop"], stderr=subprocess.DEVNULL)


signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(143)))
try:
    mx = subprocess.Popen([mxa, "-c", os.path.join(mdir, "mxa.toml")],
                          stderr=open(os.path.join(mdir, "log"), "w"), env={"PATH": "/usr/bin:/bin"})
    procs.append(mx)
    dv = subprocess.Popen(["dovecot", "-F", "-c", conf], stderr=open(os.path.join(ddir, "stderr"), "w"))
    procs.append(dv)
    wait_port(mx_port, mx, "mxa-pop3d")
    wait_port(dv_port, dv, "dovecot")

    results = {"mxa-pop3d": [], "dovecot": []}
    for r in range(rounds):
        order = [("mxa-pop3d", mx, mx_port, mx_maildir), ("dovecot", dv, dv_port, dv_maildir)]
        # Each goes first in every other round, so that a machine getting
        # busier or quieter during the run favours neither.
        for name, proc, port, maildir in (order if r % 2 == 0 else order[::-1]):
            fill(maildir)
            subprocess.call(["sync"])
            before = tree_cpu(proc.pid)
            wall = session(port, maildir)
            time.sleep(0.5)  # Dovecot's pop3 process exits and is reaped
            cpu = tree_cpu(proc.pid) - before
            results[name].append((wall, cpu))
            print(f"round {r + 1}  {name:<10} {n / wall:8.0f} msg/s  {total / 2**20 / wall:7.1f} MiB/s"
                  f"  wall {wall:6.2f} s  server CPU {cpu:6.2f} s ({cpu / n * 1e6:5.0f} us/msg)")
    print()
    med = {}
    for name, rs in results.items():
        wall = statistics.median(w for w, _ in rs)
        cpu = statistics.median(c for _, c in rs)
        med[name] = (wall, cpu)
        print(f"median     {name:<10} {n / wall:8.0f} msg/s  server CPU {cpu:6.2f} s")
    (mw, mc), (dw, dc) = med["mxa-pop3d"], med["dovecot"]
    print(f"mxa-pop3d / dovecot: rate x{dw / mw:.2f}, CPU x{mc / dc if dc else float('inf'):.2f}")
finally:
    stop_all()
PY
