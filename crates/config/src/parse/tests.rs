//! Whole files: defaults, the example of DESIGN.md, and each kind of error
//! with its line and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::{BareLf, Config, ConfigError, FetchTarget, Relayhost};

const USERS: &str = "# test accounts\nme@example.org:$6$salt$hash\nyou@example.org:$argon2id$v=19$m=1,t=1,p=1$c$h:Maildir\n";

/// A folder holding the files a config may name.
fn setup() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [
        ("users", USERS),
        ("aliases", "postmaster: me@example.org\n"),
        ("cert.pem", "-----BEGIN CERTIFICATE-----\n"),
        ("key.pem", "-----BEGIN PRIVATE KEY-----\n"),
        ("relay-password", "me:secret\n"),
    ] {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn parse(dir: &TempDir, text: &str) -> Result<Config, ConfigError> {
    Config::from_str(text, &dir.path().join("mxa.toml"))
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect(s)
}

/// The example of DESIGN.md, with the files it names in the test folder.
const EXAMPLE: &str = r#"hostname = "mx.example.org"       # HELO name, Received:, bounces
domains  = ["example.org"]        # local domains
users    = "/etc/mxa/users"       # the users file, below
aliases  = "/etc/mxa/aliases"     # optional, aliases(5) syntax, expanded by mxa-queue
spool    = "/var/spool/mxa"
mailroot = "/var/mail"            # Maildirs of users whose entry names none
user     = "mxa"                  # account daemons run as when started as root

[smtpd]
listen      = ["[::]:25"]         # MTA: no AUTH needed, local domains only
submission  = ["[::]:587"]        # MSA: STARTTLS, then AUTH required
submissions = ["[::]:465"]        # MSA: implicit TLS, then AUTH required
tls_cert    = "/etc/mxa/cert.pem"
tls_key     = "/etc/mxa/key.pem"
max_message_size = "35M"
max_recipients   = 100
timeout          = "5m"           # every read from a client, DATA included
max_connections  = 1000
max_connections_per_client = 50   # clients in trusted_networks are exempt
trusted_networks = ["127.0.0.0/8", "::1/128"]   # may relay without AUTH
bare_lf          = "normalize"    # or "reject"; bare CR is always refused

[queue]
mda       = "mxa-deliver"         # command for local recipients, see below
relayhost = ""                    # "[host]:port" as Postfix: brackets = no MX lookup
relayhost_password_file = ""      # "user:password" for AUTH to the relayhost
smtp_port = 25                    # port of remote MX hosts
routes    = {}                    # domain = "host:port", overrides MX lookup
lifetime  = "5d"
delay_warning = "4h"
bounce_languages = ["en", "fr"]

[dns]
nameservers = []                  # "IP" or "IP:PORT"; empty: the system resolver

[pop3d]
listen = ["[::]:110"]             # STLS offered; certificate from [smtpd]
pop3s  = ["[::]:995"]

[[fetch]]                         # one table per account, for mxa-fetch
name = "old-provider"
url  = "imaps://me@imap.example.net/INBOX"
password_command = "pass show old-provider"
mda  = "mxa-deliver"              # or maildir = "...", or queue_to = "me@example.org"
keep = false
idle = false
"#;

#[test]
fn defaults() {
    let c = Config::default();
    assert_eq!(c.file, None);
    assert!(!c.hostname.is_empty() && !c.hostname.contains(' '));
    assert!(c.domains.is_empty());
    assert_eq!((c.users.as_ref(), c.aliases.as_ref()), (None, None));
    assert_eq!(c.spool, Path::new("/var/spool/mxa"));
    assert_eq!(c.mailroot, Path::new("/var/mail"));
    assert_eq!(c.user, "mxa");
    assert_eq!(c.deliver.recipient_delimiter, "+");
    assert_eq!(c.deliver.filter, None);
    assert_eq!(c.deliver.command_timeout, Duration::from_secs(600));
    let s = &c.smtpd;
    assert_eq!(
        (s.listen.clone(), s.submission.clone()),
        (vec![sa("[::]:25")], vec![sa("[::]:587")])
    );
    assert_eq!(s.submissions, vec![sa("[::]:465")]);
    assert_eq!((s.tls_cert.as_ref(), s.tls_key.as_ref()), (None, None));
    assert_eq!(
        (s.max_message_size, s.max_recipients),
        (35 * 1024 * 1024, 100)
    );
    assert_eq!(s.timeout, Duration::from_secs(300));
    assert_eq!(
        (s.max_connections, s.max_connections_per_client),
        (1000, 50)
    );
    let nets: Vec<String> = s.trusted_networks.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["127.0.0.0/8", "::1/128"]);
    assert_eq!(s.bare_lf, BareLf::Normalize);
    let q = &c.queue;
    assert_eq!(
        (
            q.mda.as_str(),
            q.relayhost.as_ref(),
            q.relayhost_password_file.as_ref()
        ),
        ("mxa-deliver", None, None)
    );
    assert_eq!((q.smtp_port, q.routes.len()), (25, 0));
    assert_eq!(
        (q.lifetime, q.delay_warning),
        (
            Duration::from_secs(5 * 86_400),
            Duration::from_secs(4 * 3600)
        )
    );
    assert_eq!(q.bounce_languages, ["en", "fr"]);
    assert_eq!(
        (q.max_connections, q.max_connections_per_destination),
        (20, 10)
    );
    assert!(c.dns.nameservers.is_empty());
    assert_eq!(
        (c.pop3d.listen.clone(), c.pop3d.pop3s.clone()),
        (vec![sa("[::]:110")], vec![sa("[::]:995")])
    );
    assert!(c.fetch.is_empty());
    assert!(c.load_users().expect("no users file").entries.is_empty());
}

#[test]
fn empty_file_is_the_defaults() {
    let dir = setup();
    let c = parse(&dir, "# nothing\n").expect("parses");
    assert_eq!(
        c.file.as_deref(),
        Some(dir.path().join("mxa.toml").as_path())
    );
    assert_eq!(c.smtpd.listen, vec![sa("[::]:25")]);
    assert_eq!(c.queue.bounce_languages, ["en", "fr"]);
}

#[test]
fn design_example() {
    let dir = setup();
    let folder = format!("{}/", dir.path().display());
    let c = parse(&dir, &EXAMPLE.replace("/etc/mxa/", &folder)).expect("parses");
    assert_eq!(c.hostname, "mx.example.org");
    assert_eq!(c.domains, ["example.org"]);
    assert!(c.is_local_domain("EXAMPLE.org") && !c.is_local_domain("example.net"));
    assert_eq!(c.users, Some(dir.path().join("users")));
    assert_eq!(c.aliases, Some(dir.path().join("aliases")));
    assert_eq!(
        (c.spool.as_path(), c.mailroot.as_path(), c.user.as_str()),
        (Path::new("/var/spool/mxa"), Path::new("/var/mail"), "mxa")
    );
    assert_eq!(c.smtpd.tls_cert, Some(dir.path().join("cert.pem")));
    assert_eq!(c.smtpd.tls_key, Some(dir.path().join("key.pem")));
    assert_eq!(c.smtpd.max_message_size, 35 << 20);
    assert_eq!(c.smtpd.timeout, Duration::from_secs(300));
    assert_eq!(c.queue.relayhost, None);
    assert_eq!(c.queue.relayhost_password_file, None);
    assert_eq!(c.queue.lifetime, Duration::from_secs(432_000));
    assert_eq!(c.fetch.len(), 1);
    let f = &c.fetch[0];
    assert_eq!(
        (f.name.as_str(), f.url.as_str()),
        ("old-provider", "imaps://me@imap.example.net/INBOX")
    );
    assert_eq!(
        f.password_command.as_deref(),
        Some("pass show old-provider")
    );
    assert_eq!(f.target, FetchTarget::Mda("mxa-deliver".into()));
    assert!(!f.keep && !f.idle && f.folders.is_empty());
    let users = c.load_users().expect("users");
    assert_eq!(users.entries.len(), 2);
    assert_eq!(
        users
            .find("you@example.org")
            .and_then(|u| u.maildir.clone()),
        Some(dir.path().join("Maildir"))
    );
}

#[test]
fn relative_paths_and_other_values() {
    let dir = setup();
    let text = r#"
hostname = "mx.example.org"
domains = ["Example.ORG", "example.net"]
users = "users"
aliases = "./aliases"
spool = "spool"
mailroot = "mail"
[smtpd]
listen = ["127.0.0.1:2525"]
submission = []
submissions = ["127.0.0.1:2465", "[::1]:2465"]
tls_cert = "cert.pem"
tls_key = "key.pem"
max_message_size = 1048576
timeout = "90s"
trusted_networks = ["10.0.0.0/8", "192.0.2.7"]
bare_lf = "reject"
[queue]
mda = "procmail -d {user}"
relayhost = "[smtp.example.net]:587"
relayhost_password_file = "relay-password"
smtp_port = 2525
lifetime = "2d"
delay_warning = "30m"
bounce_languages = ["fr"]
max_connections = 50
max_connections_per_destination = 5
[queue.routes]
"Example.COM" = "[2001:db8::1]:2526"
"example.info" = "mx.example.info"
[dns]
nameservers = ["192.0.2.53", "[2001:db8::53]:5353"]
[pop3d]
listen = []
[[fetch]]
name = "a"
url = "pop3s://me@pop.example.net"
maildir = "fetched"
keep = true
[[fetch]]
name = "b"
url = "imap://imap.example.net"
queue_to = "me@example.org"
folders = ["INBOX", "Lists/rust"]
idle = true
"#;
    let c = parse(&dir, text).expect("parses");
    let d = dir.path();
    assert_eq!(c.domains, ["example.org", "example.net"]);
    assert_eq!(
        (c.users, c.aliases),
        (Some(d.join("users")), Some(d.join("./aliases")))
    );
    assert_eq!((c.spool, c.mailroot), (d.join("spool"), d.join("mail")));
    assert_eq!(c.smtpd.listen, vec![sa("127.0.0.1:2525")]);
    assert!(
        c.smtpd.submission.is_empty(),
        "an empty list disables the listener"
    );
    assert_eq!(
        c.smtpd.submissions,
        vec![sa("127.0.0.1:2465"), sa("[::1]:2465")]
    );
    assert_eq!(
        (c.smtpd.tls_cert, c.smtpd.tls_key),
        (Some(d.join("cert.pem")), Some(d.join("key.pem")))
    );
    assert_eq!(
        (c.smtpd.max_message_size, c.smtpd.timeout),
        (1 << 20, Duration::from_secs(90))
    );
    let nets: Vec<String> = c
        .smtpd
        .trusted_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32"]);
    assert_eq!(c.smtpd.bare_lf, BareLf::Reject);
    let q = &c.queue;
    assert_eq!(q.mda, "procmail -d {user}");
    assert_eq!(
        q.relayhost,
        Some(Relayhost {
            host: "smtp.example.net".into(),
            port: 587,
            mx_lookup: false
        })
    );
    assert_eq!(q.relayhost_password_file, Some(d.join("relay-password")));
    assert_eq!(q.smtp_port, 2525);
    assert_eq!(
        q.routes.get("example.com"),
        Some(&("2001:db8::1".to_string(), 2526))
    );
    assert_eq!(
        q.routes.get("example.info"),
        Some(&("mx.example.info".to_string(), 2525)),
        "smtp_port by default"
    );
    assert_eq!(
        (q.lifetime, q.delay_warning),
        (Duration::from_secs(172_800), Duration::from_secs(1800))
    );
    assert_eq!(q.bounce_languages, ["fr"]);
    assert_eq!(
        (q.max_connections, q.max_connections_per_destination),
        (50, 5)
    );
    assert_eq!(
        c.dns.nameservers,
        vec![sa("192.0.2.53:53"), sa("[2001:db8::53]:5353")]
    );
    assert!(c.pop3d.listen.is_empty());
    assert_eq!(c.pop3d.pop3s, vec![sa("[::]:995")]);
    assert_eq!(c.fetch[0].target, FetchTarget::Maildir(d.join("fetched")));
    assert!(c.fetch[0].keep && !c.fetch[0].idle);
    assert_eq!(
        c.fetch[1].target,
        FetchTarget::QueueTo("me@example.org".into())
    );
    assert_eq!(c.fetch[1].folders, ["INBOX", "Lists/rust"]);
    assert!(c.fetch[1].idle && !c.fetch[1].keep);
}

#[test]
fn config_file_relative_to_current_folder() {
    // A relative config path still gives absolute paths.
    let c = Config::from_str("spool = \"s\"\n", Path::new("mxa.toml")).expect("parses");
    assert!(
        c.spool.is_absolute() && c.spool.ends_with("s"),
        "{}",
        c.spool.display()
    );
    assert!(c.file.as_deref().is_some_and(Path::is_absolute));
}

/// Each bad file: (text, line, key, part of the message).
#[rustfmt::skip]
const BAD: &[(&str, usize, &str, &str)] = &[
    // Syntax.
    ("hostname = \"a\"\n[smtpd]\ntimeout = 5m\n", 3, "smtpd.timeout", "TOML syntax"),
    ("hostname = \"a\"\nhostname = \"b\"\n", 2, "hostname", "duplicate key"),
    ("[smtpd\n", 1, "toml", "TOML syntax"),
    // Unknown keys and tables.
    ("hostnam = \"a\"\n", 1, "hostnam", "unknown key; expected one of hostname, domains, users"),
    ("\n[smtpd]\nlisten = []\ntimeuot = \"5m\"\n", 4, "smtpd.timeuot", "unknown key; expected one of listen, submission"),
    ("[smtp]\nlisten = []\n", 1, "smtp", "unknown key"),
    ("[queue.routes]\n\"example.org\" = \"mx:25\"\n[queue.route]\n", 3, "queue.route", "unknown key"),
    ("[[fetch]]\nname = \"a\"\nurl = \"imap://h\"\n[[fetch]]\nname = \"b\"\nbogus = 1\n", 6, "fetch[2].bogus", "unknown key; expected one of name, url"),
    // Wrong types of whole tables and lists.
    ("smtpd = 3\n", 1, "smtpd", "expected a table, found integer 3"),
    ("domains = \"example.org\"\n", 1, "domains", "expected a list"),
    ("[fetch]\nname = \"a\"\n", 1, "fetch", "expected [[fetch]] tables, one per account, found a table"),
    ("[queue]\nroutes = 3\n", 2, "queue.routes", "expected a table"),
    // Values.
    ("\n\n\n\n\n[smtpd]\ntimeout = \"5 minutes\"\n", 7, "smtpd.timeout", "expected a duration such as \"5m\" (a number with s, m, h or d), found \"5 minutes\""),
    ("[smtpd]\ntimeout = 300\n", 2, "smtpd.timeout", "write it as a string: \"300s\""),
    ("[smtpd]\ntimeout = \"0s\"\n", 2, "smtpd.timeout", "above 0"),
    ("hostname = 3\n", 1, "hostname", "expected a string, found 3"),
    ("hostname = \"\"\n", 1, "hostname", "expected a host name"),
    ("hostname = \"mx example\"\n", 1, "hostname", "no blank"),
    ("user = \"\"\n", 1, "user", "expected an account name"),
    ("spool = \"\"\n", 1, "spool", "expected a folder path"),
    ("domains = [\n  \"example.org\",\n  \"exa mple.net\",\n]\n", 3, "domains", "expected a domain name"),
    ("domains = [\"me@example.org\"]\n", 1, "domains", "no @"),
    ("domains = [\"a.org\", \"A.org\"]\n", 1, "domains", "a.org is listed twice"),
    ("[smtpd]\nlisten = [\"*:25\"]\n", 2, "smtpd.listen", "expected an address and port such as \"[::]:25\""),
    ("[smtpd]\nsubmissions = [25]\n", 2, "smtpd.submissions", "expected a string, found 25"),
    ("[smtpd]\nmax_message_size = \"35MB\"\n", 2, "smtpd.max_message_size", "expected a size such as \"35M\""),
    ("[smtpd]\nmax_message_size = -1\n", 2, "smtpd.max_message_size", "found -1"),
    ("[smtpd]\nmax_message_size = 0\n", 2, "smtpd.max_message_size", "above 0"),
    ("[smtpd]\nmax_recipients = 0\n", 2, "smtpd.max_recipients", "expected a whole number from 1 to 4294967295, found 0"),
    ("[smtpd]\nmax_connections = \"10\"\n", 2, "smtpd.max_connections", "found \"10\""),
    ("[smtpd]\nmax_connections_per_client = 5000000000\n", 2, "smtpd.max_connections_per_client", "found 5000000000"),
    ("[smtpd]\ntrusted_networks = [\"192.168.1.1/24\"]\n", 2, "smtpd.trusted_networks", "host bits set: expected the network address, 192.168.1.0/24"),
    ("[smtpd]\nbare_lf = \"strip\"\n", 2, "smtpd.bare_lf", "expected \"normalize\" or \"reject\", found \"strip\""),
    ("[smtpd]\ntls_cert = \"cert.pem\"\n", 2, "smtpd.tls_cert", "tls_key is needed with tls_cert"),
    ("[smtpd]\ntls_key = \"key.pem\"\n", 2, "smtpd.tls_key", "tls_cert is needed with tls_key"),
    ("[smtpd]\ntls_cert = \"nope.pem\"\ntls_key = \"key.pem\"\n", 2, "smtpd.tls_cert", "no such file: "),
    ("aliases = \"nope\"\n", 1, "aliases", "no such file: "),
    ("\nusers = \"missing-users\"\n", 2, "users", "no such file: "),
    ("users = \".\"\n", 1, "users", "is a folder, expected a file"),
    ("[queue]\nmda = \"\"\n", 2, "queue.mda", "expected a command"),
    ("[queue]\nrelayhost = \"[smtp.example.net:587\"\n", 2, "queue.relayhost", "expected \"[host]:port\""),
    ("[queue]\nrelayhost_password_file = \"nope\"\n", 2, "queue.relayhost_password_file", "no such file"),
    ("[queue]\nsmtp_port = 0\n", 2, "queue.smtp_port", "expected a port from 1 to 65535, found 0"),
    ("[queue]\nsmtp_port = 65536\n", 2, "queue.smtp_port", "found 65536"),
    ("[queue.routes]\n\"example.org\" = \"mx:0\"\n", 2, "queue.routes.example.org", "expected \"host:port\""),
    ("[queue]\nroutes = { \"exa mple.org\" = \"mx:25\" }\n", 2, "queue.routes.exa mple.org", "expected a domain name"),
    ("[queue.routes]\n\"a.org\" = \"mx:25\"\n\"A.org\" = \"mx:26\"\n", 2, "queue.routes.a.org", "already given"),
    ("[queue]\nmax_connections = 0\n", 2, "queue.max_connections", "from 1 to 1000, found 0"),
    ("[queue]\nmax_connections_per_destination = \"ten\"\n", 2, "queue.max_connections_per_destination", "expected a whole number"),
    ("[queue]\nlifetime = \"5\"\n", 2, "queue.lifetime", "expected a duration"),
    ("[queue]\ndelay_warning = \"0m\"\n", 2, "queue.delay_warning", "above 0"),
    ("[queue]\nbounce_languages = []\n", 2, "queue.bounce_languages", "at least one language"),
    ("[queue]\nbounce_languages = [\"en\", \"de\"]\n", 2, "queue.bounce_languages", "\"en\" or \"fr\", found \"de\""),
    ("[queue]\nbounce_languages = [\"en\", \"en\"]\n", 2, "queue.bounce_languages", "listed twice"),
    ("[dns]\nnameservers = [\"ns.example.net\"]\n", 2, "dns.nameservers", "expected \"IP\" or \"IP:PORT\""),
    ("[pop3d]\npop3s = [\"995\"]\n", 2, "pop3d.pop3s", "expected an address and port"),
    ("[deliver]\nrecipient_delimiter = \"x\"\n", 2, "deliver.recipient_delimiter", "expected delimiter characters"),
    ("[deliver]\ncommand_timeout = \"soon\"\n", 2, "deliver.command_timeout", "expected a duration"),
    ("[deliver]\nfiltre = \"spamc\"\n", 2, "deliver.filtre", "unknown key"),
    // [[fetch]].
    ("[[fetch]]\nurl = \"imaps://h\"\n", 1, "fetch[1].name", "missing: every [[fetch]] table needs name"),
    ("[[fetch]]\nname = \"a\"\n", 1, "fetch[1].url", "missing: every [[fetch]] table needs url"),
    ("[[fetch]]\nname = \"a/b\"\nurl = \"imaps://h\"\n", 2, "fetch[1].name", "expected a name such as"),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\n\n[[fetch]]\nname = \"b\"\nurl = \"https://h\"\n", 7, "fetch[2].url", "expected a URL with scheme pop3, pop3s, imap or imaps, found \"https\""),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\n[[fetch]]\nname = \"a\"\nurl = \"pop3://h\"\n", 5, "fetch[2].name", "already that of fetch[1]"),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\nmda = \"x\"\nmaildir = \"m\"\n", 5, "fetch[1].maildir", "give only one of mda, maildir and queue_to"),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\nqueue_to = \"nobody\"\n", 4, "fetch[1].queue_to", "expected an address"),
    ("[[fetch]]\nname = \"a\"\nurl = \"pop3s://h\"\nidle = true\n", 4, "fetch[1].idle", "IDLE is IMAP only"),
    ("[[fetch]]\nname = \"a\"\nurl = \"pop3s://h\"\nmove_to = \"Archive\"\n", 4, "fetch[1].move_to", "IMAP only"),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\nkeep = true\nmove_to = \"Archive\"\n", 5, "fetch[1].move_to", "exclude each other"),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\nmove_to = \"\"\n", 4, "fetch[1].move_to", "expected an IMAP folder"),
    ("[[fetch]]\nname = \"a\"\nurl = \"pop3s://h\"\nfolders = [\"INBOX\"]\n", 4, "fetch[1].folders", "IMAP only"),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\nkeep = \"yes\"\n", 4, "fetch[1].keep", "expected true or false, found \"yes\""),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\nfolders = [\"\"]\n", 4, "fetch[1].folders", "non-empty"),
    ("[[fetch]]\nname = \"a\"\nurl = \"imaps://h\"\npassword_command = \"\"\n", 4, "fetch[1].password_command", "expected a command"),
];

#[test]
fn errors_name_line_and_key() {
    let dir = setup();
    let file = dir.path().join("mxa.toml");
    for (text, line, key, msg) in BAD {
        let e = parse(&dir, text).expect_err(text);
        assert_eq!(e.file, file, "{text:?}");
        assert_eq!((e.line, e.key.as_str()), (*line, *key), "{text:?}: {e}");
        assert!(e.msg.contains(msg), "{text:?}: {e}");
    }
}

#[test]
fn display_reads_file_line_key_msg() {
    let dir = setup();
    let file = dir.path().join("mxa.toml");
    let text = "hostname = \"mx.example.org\"\n\n[smtpd]\nlisten = [\"[::]:25\"]\n\n\ntimeout = \"5 minutes\"\n";
    std::fs::write(&file, text).expect("write");
    let e = Config::from_file(&file).expect_err("bad timeout");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:7: smtpd.timeout: expected a duration such as \"5m\" (a number with s, m, h or d), found \"5 minutes\"",
            file.display()
        )
    );
}

#[test]
fn files_on_disk() {
    let dir = setup();
    let file = dir.path().join("mxa.toml");
    let e = Config::from_file(&file).expect_err("missing");
    assert_eq!(
        (e.file.as_path(), e.line, e.key.as_str(), e.msg.as_str()),
        (file.as_path(), 0, "-c", "no such file")
    );
    let e = Config::load(Some(&file)).expect_err("missing");
    assert_eq!(
        (e.line, e.key.as_str(), e.msg.as_str()),
        (0, "-c", "no such file")
    );
    std::fs::write(&file, "users = \"users\"\n[smtpd]\nlisten = []\n").expect("write");
    let c = Config::load(Some(&file)).expect("loads");
    assert_eq!(c.file.as_deref(), Some(file.as_path()));
    assert!(c.smtpd.listen.is_empty());
    assert!(
        c.load_users()
            .expect("users")
            .find("me@EXAMPLE.org")
            .is_some()
    );
    std::fs::write(&file, b"hostname = \"a\"\n# \xff\n").expect("write");
    let e = Config::from_file(&file).expect_err("binary");
    assert_eq!((e.line, e.msg.as_str()), (2, "not UTF-8 text"));
}

#[test]
fn users_file_errors_name_the_users_file() {
    let dir = setup();
    let users: PathBuf = dir.path().join("users");
    std::fs::write(
        &users,
        "me@example.org:$6$s$h\n\n# ok so far\nyou@example.org:plaintext\n",
    )
    .expect("write");
    let e = parse(&dir, "hostname = \"mx\"\nusers = \"users\"\n").expect_err("bad users line");
    assert_eq!(
        (e.file.as_path(), e.line, e.key.as_str()),
        (users.as_path(), 4, "users: you@example.org")
    );
    assert!(e.msg.contains("crypt(3)"), "{e}");
    assert!(e.to_string().starts_with(&format!(
        "{}:4: users: you@example.org: expected",
        users.display()
    )));
}

#[test]
fn man_page_minimal_example() {
    let dir = setup();
    let text = "hostname = \"mx.example.org\"\ndomains  = [\"example.org\"]\nusers    = \"users\"\nsmtpd.tls_cert = \"cert.pem\"\nsmtpd.tls_key  = \"key.pem\"\n";
    let c = parse(&dir, text).expect("parses");
    assert_eq!(c.smtpd.tls_key, Some(dir.path().join("key.pem")));
    let e = parse(&dir, "smtpd.timeuot = \"5m\"\n").expect_err("unknown dotted key");
    assert_eq!((e.line, e.key.as_str()), (1, "smtpd.timeuot"));
    let e = parse(&dir, "[queue]\nroutes = { \"example.org\" = 25 }\n").expect_err("route type");
    assert_eq!((e.line, e.key.as_str()), (2, "queue.routes.example.org"));
}
