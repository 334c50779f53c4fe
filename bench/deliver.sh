#!/usr/bin/env bash
# Deliveries per second and peak memory of mxa-deliver beside maildrop,
# procmail and dovecot-lda, measured in the same run on the same disk.
#
#   apt-get install -y maildrop procmail dovecot-core time
#   cargo build --release -p mxa-deliver-bin
#   bench/deliver.sh [N]            (default N=2000)
#
# N messages of mixed sizes (fixed seed: 70% 2-8 KiB, 25% 20-100 KiB,
# 5% 0.5-2 MiB) are made once in a temporary folder and handed to each MDA,
# one process per message as Postfix runs a mailbox_command or a pipe(8)
# transport, into a fresh Maildir in the same temporary folder (so the same
# disk). For each MDA it reports the wall time of the N deliveries
# (messages/s, ms per message), the CPU time its processes used, the peak
# RSS of one delivery (median and max of GNU time's %M over 50 deliveries,
# the 5 largest messages among them), and how many fsync/fdatasync calls one
# delivery makes (when strace is installed). Every MDA must leave exactly N
# files in new/ holding at least the bytes it was given, or the run fails.
#
# Two reference rows that are not MDAs: spawning /bin/true once per message
# (what the harness itself costs) and an in-process durable write of each
# message (create in tmp/, write, fsync, link into new/, fsync new/, unlink),
# the disk's floor for one durable Maildir delivery.
#
# Who runs the deliveries: as Postfix does, an ordinary user. When started as
# root the script drops to BENCH_USER (default nobody) for the measurements,
# for every MDA alike. dovecot-lda needs this: as root it insists on -d USER,
# and -d looks the user up through a running dovecot auth service
# (/run/dovecot/auth-userdb); as an ordinary user it delivers to the
# mail_location of a tiny config file with no userdb at all.
#
# Environment: MXA_DELIVER (the binary, default target/release/mxa-deliver),
# BENCH_USER (see above), TMPDIR (where the temporary folder goes; it should
# be a real disk, not tmpfs, or the fsyncs cost nothing).
#
# The MDAs and how each is run (MAILDIR ends in /):
#   mxa-deliver  -n -f sender@example.org -a user@example.org MAILDIR
#                (no -c, MXA_CONFIG unset; it fsyncs the file and new/)
#   maildrop     -f sender@example.org FILTER   (manual mode; FILTER is
#                `to "MAILDIR"`, mode 0600, owned by the user running it)
#   procmail     -m -f sender@example.org RCFILE  (RCFILE 0600:
#                LOGFILE=/dev/null, DEFAULT=MAILDIR)
#   dovecot-lda  -c CONF -f sender@example.org -a user@example.org
#                (CONF: mail_location = maildir:MAILDIR, postmaster_address,
#                ssl = no, info_log_path = /dev/null; mail_fsync is left at
#                its default, printed with the results)
#
# This is a benchmark, never run as a test. It installs nothing.

set -euo pipefail

n=${1:-2000}
case $n in '' | *[!0-9]*)
    echo "usage: $0 [N]" >&2
    exit 64
    ;;
esac
if ((n < 60)); then
    echo "$0: N must be at least 60 (50 of them are sampled for memory)" >&2
    exit 64
fi

root=$(cd "$(dirname "$0")/.." && pwd)
mxa=${MXA_DELIVER:-$root/target/release/mxa-deliver}
lda=/usr/lib/dovecot/dovecot-lda

missing=()
need() { # need PROGRAM-PATH-OR-NAME WHAT-PROVIDES-IT
    if [[ $1 == */* ]]; then [[ -x $1 ]] || missing+=("$1 ($2)"); else
        command -v "$1" >/dev/null || missing+=("$1 ($2)")
    fi
}
need maildrop "Debian package maildrop"
need procmail "Debian package procmail"
need "$lda" "Debian package dovecot-core"
need doveconf "Debian package dovecot-core"
need /usr/bin/time "GNU time: Debian package time"
need python3 "Debian package python3"
need "$mxa" "cargo build --release -p mxa-deliver-bin"
if ((${#missing[@]})); then
    echo "$0: missing:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    echo "install with: apt-get install -y maildrop procmail dovecot-core time python3" >&2
    exit 69
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mxa-deliver-bench.XXXXXX")
pypid=
cleanup() { rm -rf -- "$work"; }
stop() { # end the measurement (it ends the delivery under way), then leave
    if [[ -n $pypid ]]; then
        kill -TERM "$pypid" 2>/dev/null || true
        wait "$pypid" 2>/dev/null || true
    fi
    exit "$1"
}
trap cleanup EXIT
trap 'stop 130' INT
trap 'stop 143' TERM
chmod 711 "$work" # the user the deliveries run as must reach its folders

run_user=$(id -un)
if (($(id -u) == 0)); then
    run_user=${BENCH_USER:-nobody}
    if [[ $(id -u "$run_user" 2>/dev/null) == 0 ]]; then
        echo "$0: BENCH_USER must not be root: dovecot-lda then needs -d and a running dovecot auth service" >&2
        exit 64
    fi
fi

versions() {
    echo "mxa-deliver  $(grep -m1 '^version' "$root/Cargo.toml" | cut -d'"' -f2)" \
        "(git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $mxa)"
    echo "maildrop     $(maildrop -v 2>&1 | head -1)"
    echo "procmail     $(procmail -v 2>&1 | head -1)"
    echo "dovecot-lda  $(dovecot --version 2>/dev/null || doveconf -h 2>/dev/null | head -1)"
    echo "GNU time     $(dpkg-query -W -f '${Version}' time 2>/dev/null || echo '?')," \
        "python $(python3 -c 'import platform; print(platform.python_version())')," \
        "strace $(strace -V 2>/dev/null | head -1 | awk '{print $NF}' || true)"
    echo "kernel       $(uname -r), $(nproc) CPUs;" \
        "disk: $(findmnt -n -f -o SOURCE,FSTYPE,OPTIONS -T "$work" 2>/dev/null || stat -f -c %T "$work")"
}
versions
if [[ $(stat -f -c %T "$work") == tmpfs ]]; then
    echo "warning: $work is on tmpfs, where fsync costs nothing; set TMPDIR to a folder on a disk" >&2
fi

# In the background so that INT and TERM reach the traps above at once.
python3 - "$n" "$work" "$mxa" "$lda" "$run_user" <<'PY' &
import base64, os, pwd, random, resource, shutil, signal, statistics, subprocess, sys, time

# subprocess.call kills and reaps the delivery under way when this fires.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

n, work, mxa, lda, run_user = int(sys.argv[1]), *sys.argv[2:6]
sys.stdout.reconfigure(line_buffering=True)  # in order with the progress on stderr
pw = pwd.getpwnam(run_user)
uid, gid = pw.pw_uid, pw.pw_gid
SENDER, RCPT = "sender@example.org", "user@example.org"
SAMPLE = 50


def die(msg):
    print(f"deliver.sh: {msg}", file=sys.stderr)
    sys.exit(1)


# --- the messages: made once, the same bytes for every MDA --------------------
rng = random.Random(20261123)
msgdir = os.path.join(work, "messages")
os.mkdir(msgdir)
os.chmod(msgdir, 0o755)  # read by the deliveries' user
files, sizes = [], []
WORDS = ("the quick brown fox jumps over lazy dog mail server delivery "
         "maildir queue message header body line test bench").split()
for i in range(n):
    r = rng.random()
    if r < 0.70:
        size = rng.randint(2 << 10, 8 << 10)
    elif r < 0.95:
        size = rng.randint(20 << 10, 100 << 10)
    else:
        size = rng.randint(512 << 10, 2 << 20)
    head = (f"Return-Path: <{SENDER}>\n"
            f"Received: from client.example.net (client.example.net [192.0.2.7])\n"
            f"\tby mx.example.org with ESMTPS id {i:08X}; Mon, 23 Nov 2026 18:00:00 +0000\n"
            f"From: Sender <{SENDER}>\nTo: User <{RCPT}>\n"
            f"Subject: benchmark message {i}\n"
            f"Date: Mon, 23 Nov 2026 18:00:00 +0000\n"
            f"Message-ID: <bench.{i}@example.org>\nMIME-Version: 1.0\n")
    if size < 16 << 10:  # plain text
        body = []
        left = size - len(head) - 40
        while left > 0:
            line = " ".join(rng.choice(WORDS) for _ in range(11)) + "\n"
            body.append(line)
            left -= len(line)
        data = (head + "Content-Type: text/plain; charset=us-ascii\n\n" + "".join(body)).encode()
    else:  # a text part and a base64 attachment, 76-column lines
        text = "Please find the file attached.\n"
        blob = base64.encodebytes(rng.randbytes(max(0, (size - len(head) - 400) * 3 // 4)))
        data = (head + 'Content-Type: multipart/mixed; boundary="b1"\n\n'
                "--b1\nContent-Type: text/plain; charset=us-ascii\n\n" + text +
                "--b1\nContent-Type: application/octet-stream; name=\"f.bin\"\n"
                "Content-Transfer-Encoding: base64\n\n").encode() + blob + b"--b1--\n"
    p = os.path.join(msgdir, f"m{i:05d}")
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, 0o644)
    files.append(p)
    sizes.append(len(data))

total = sum(sizes)
by_size = sorted(range(n), key=lambda i: sizes[i])
largest = by_size[-5:]
rest = [i for i in range(n) if i not in largest]
sample = largest + [rest[k * len(rest) // (SAMPLE - 5)] for k in range(SAMPLE - 5)]
print(f"\nmessages     {n}, {total / 2**20:.1f} MiB in all; sizes {sizes[by_size[0]]} B .. "
      f"{sizes[by_size[-1]] / 2**20:.2f} MiB, median {sizes[by_size[n // 2]] / 1024:.1f} KiB "
      f"(70% 2-8 KiB, 25% 20-100 KiB, 5% 0.5-2 MiB; seed 20261123)")
print(f"memory       peak RSS over {SAMPLE} deliveries incl. the 5 largest "
      f"({', '.join(f'{sizes[i] / 2**20:.2f}' for i in largest)} MiB)")
print(f"runs as      {run_user} (uid {uid}), one process per message; folders in {work}")

# --- per-MDA folders and files, owned by the user the deliveries run as -------
def mkdirs(*paths):
    for p in paths:
        os.makedirs(p, exist_ok=True)
        os.chown(p, uid, gid)


def maildir(path):
    mkdirs(path, *(os.path.join(path, s) for s in ("tmp", "new", "cur")))
    return path + "/"


def write(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    os.chown(path, uid, gid)


class Mda:
    """name, and argv for a Maildir (ending in /) given the MDA's own dir."""

    def __init__(self, name, setup, reference=False):
        self.name, self.setup, self.reference = name, setup, reference


def mxa_setup(d, md):
    return [mxa, "-n", "-f", SENDER, "-a", RCPT, md]


def maildrop_setup(d, md):
    filt = os.path.join(d, "filter." + os.path.basename(md.rstrip("/")))
    write(filt, f'to "{md}"\n', 0o600)
    return ["maildrop", "-f", SENDER, filt]


def procmail_setup(d, md):
    rc = os.path.join(d, "procmailrc." + os.path.basename(md.rstrip("/")))
    write(rc, f"LOGFILE=/dev/null\nDEFAULT={md}\n", 0o600)
    return ["procmail", "-m", "-f", SENDER, rc]


def dovecot_conf(d, md):
    conf = os.path.join(d, "dovecot.conf." + os.path.basename(md.rstrip("/")))
    write(conf, f"mail_location = maildir:{md.rstrip('/')}\n"
                "postmaster_address = postmaster@example.org\n"
                "ssl = no\nlog_path = /dev/stderr\ninfo_log_path = /dev/null\n", 0o644)
    return conf


def dovecot_setup(d, md):
    return [lda, "-c", dovecot_conf(d, md), "-f", SENDER, "-a", RCPT]


def true_setup(d, md):
    return ["/bin/true"]


mdas = [Mda("(spawn /bin/true)", true_setup, reference=True),
        Mda("(in-process write)", None, reference=True),
        Mda("mxa-deliver", mxa_setup),
        Mda("maildrop", maildrop_setup),
        Mda("procmail", procmail_setup),
        Mda("dovecot-lda", dovecot_setup)]

fsync_mode = "?"
for m in mdas:
    m.dir = os.path.join(work, m.name.strip("()").replace(" ", "-").replace("/", ""))
    mkdirs(m.dir, os.path.join(m.dir, "home"))
    m.md = {k: maildir(os.path.join(m.dir, k)) for k in ("warm", "timed", "sample")}
    m.argv = {k: m.setup(m.dir, md) for k, md in m.md.items()} if m.setup else None
    m.log = os.path.join(m.dir, "stderr")
    with open(m.log, "w"):
        pass
    os.chown(m.log, uid, gid)
    m.env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.path.join(m.dir, "home"),
             "USER": run_user, "LOGNAME": run_user, "SHELL": "/bin/sh", "LANG": "C"}
    if m.name == "dovecot-lda":
        r = subprocess.run(["doveconf", "-c", m.argv["timed"][2], "-h", "mail_fsync"],
                           capture_output=True, text=True)
        fsync_mode = r.stdout.strip() or "?"

# --- from here on, as the user the deliveries run as ---------------------------
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
os.umask(0o077)


def deliver(m, kind, i, prefix=()):
    with open(files[i], "rb") as f, open(m.log, "ab") as err:
        rc = subprocess.call([*prefix, *m.argv[kind]], stdin=f, stdout=subprocess.DEVNULL,
                             stderr=err, env=m.env, cwd=m.env["HOME"])
    if rc != 0:
        with open(m.log, errors="replace") as e:
            tail = "".join(e.readlines()[-5:])
        die(f"{m.name}: delivery of {files[i]} ({kind}) exited {rc}:\n{tail}")


def in_process(md, i, seq):
    with open(files[i], "rb") as f:
        data = f.read()
    name = f"{time.time_ns()}.P{os.getpid()}Q{seq}.bench"
    tmp, new = os.path.join(md, "tmp", name), os.path.join(md, "new", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.link(tmp, new)
    dfd = os.open(os.path.join(md, "new"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    os.unlink(tmp)


def check(m, kind, want_idx):
    new = os.path.join(m.md[kind], "new")
    got = [os.path.join(new, e) for e in os.listdir(new)]
    want_bytes = sum(sizes[i] for i in want_idx)
    got_bytes = sum(os.path.getsize(p) for p in got)
    if len(got) != len(want_idx) or got_bytes < want_bytes:
        die(f"{m.name}: {kind}: {len(got)} files ({got_bytes} bytes) in {new}, "
            f"want {len(want_idx)} files of at least {want_bytes} bytes")


strace = shutil.which("strace")
results = []
for m in mdas:
    print(f"  {m.name} ...", file=sys.stderr, flush=True)  # progress
    # warm the page cache for the program and its libraries
    for i in range(10):
        if m.argv:
            deliver(m, "warm", i)
        else:
            in_process(m.md["warm"], i, i)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(n):
        if m.argv:
            deliver(m, "timed", i)
        else:
            in_process(m.md["timed"], i, i)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime) if m.argv \
        else time.process_time() - cpu0
    if m.name != "(spawn /bin/true)":
        check(m, "timed", range(n))
    rss, syncs = [], None
    if m.argv:
        out = os.path.join(m.dir, "time.out")
        for i in sample:
            deliver(m, "sample", i, ("/usr/bin/time", "-f", "%M", "-o", out))
            with open(out) as f:
                rss.append(int(f.read().split()[-1]))
        if m.name != "(spawn /bin/true)":
            check(m, "sample", sample)
        if strace:  # sync calls of one delivery of a small message, steady state
            tr = os.path.join(m.dir, "strace.out")
            deliver(m, "warm", by_size[n // 2],
                    (strace, "-f", "-qq", "-e", "trace=fsync,fdatasync,sync_file_range,syncfs,msync",
                     "-o", tr))
            with open(tr) as f:
                syncs = sum(1 for line in f if "(" in line and "resumed" not in line)
    else:
        syncs = 2
    results.append(dict(name=m.name, ref=m.reference, wall=wall, cpu=cpu,
                        rss_med=statistics.median(rss) if rss else None,
                        rss_max=max(rss) if rss else None, syncs=syncs))

# --- report ---------------------------------------------------------------------
def f(v, fmt):
    return "-" if v is None else format(v, fmt)


print()
print(f"{'MDA':<20} {'msgs/s':>8} {'ms/msg':>8} {'CPU ms/msg':>11} {'RSS med KiB':>12} "
      f"{'RSS max KiB':>12} {'syncs':>6}")
for r in results:
    print(f"{r['name']:<20} {n / r['wall']:>8.1f} {1000 * r['wall'] / n:>8.2f} "
          f"{1000 * r['cpu'] / n:>11.2f} {f(r['rss_med'], '.0f'):>12} {f(r['rss_max'], 'd'):>12} "
          f"{f(r['syncs'], 'd'):>6}")
print(f"\nCPU: user+sys of the delivery processes (reference rows: of the harness). "
      f"syncs: fsync/fdatasync calls in one delivery (strace{'' if strace else ': not installed'}).")
print(f"dovecot-lda mail_fsync = {fsync_mode}")

mx = next(r for r in results if r["name"] == "mxa-deliver")
print(f"\n{'mxa-deliver vs':<20} {'speed':>8} {'RSS med':>8} {'RSS max':>8}")
for r in results:
    if r["ref"] or r is mx:
        continue
    print(f"{r['name']:<20} {r['wall'] / mx['wall']:>7.2f}x {mx['rss_med'] / r['rss_med']:>7.2f}x "
          f"{mx['rss_max'] / r['rss_max']:>7.2f}x")
print("speed: messages/s of mxa-deliver / those of the other (above 1: mxa-deliver faster); "
      "RSS: mxa-deliver's / the other's (below 1: mxa-deliver smaller).")
PY
pypid=$!
wait "$pypid"
