//! Reading mxa.toml: the TOML goes into raw serde structs (unknown keys
//! refused, every value kept with its span), then each value is checked
//! here with the line and dotted key of what it came from.

mod addr;
mod ctx;
mod fetch;
mod locate;
mod net;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::{BareLf, Config, ConfigError, Deliver, Dns, IpNet, Pop3d, Queue, Smtpd, Users};
use ctx::Ctx;

/// A value as written, with its span.
pub(crate) type V = Spanned<toml::Value>;
/// A list as written, with its span and those of its elements.
pub(crate) type L = Spanned<Vec<V>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    hostname: Option<V>,
    domains: Option<L>,
    users: Option<V>,
    aliases: Option<V>,
    spool: Option<V>,
    mailroot: Option<V>,
    user: Option<V>,
    smtpd: Option<RawSmtpd>,
    queue: Option<RawQueue>,
    dns: Option<RawDns>,
    pop3d: Option<RawPop3d>,
    deliver: Option<RawDeliver>,
    fetch: Option<Vec<Spanned<fetch::RawFetch>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtpd {
    listen: Option<L>,
    submission: Option<L>,
    submissions: Option<L>,
    tls_cert: Option<V>,
    tls_key: Option<V>,
    max_message_size: Option<V>,
    max_recipients: Option<V>,
    timeout: Option<V>,
    max_connections: Option<V>,
    max_connections_per_client: Option<V>,
    trusted_networks: Option<L>,
    bare_lf: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    mda: Option<V>,
    relayhost: Option<V>,
    relayhost_password_file: Option<V>,
    smtp_port: Option<V>,
    routes: Option<BTreeMap<String, V>>,
    lifetime: Option<V>,
    delay_warning: Option<V>,
    bounce_languages: Option<L>,
    max_connections: Option<V>,
    max_connections_per_destination: Option<V>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    nameservers: Option<L>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPop3d {
    listen: Option<L>,
    pop3s: Option<L>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeliver {
    recipient_delimiter: Option<V>,
    filter: Option<V>,
    command_timeout: Option<V>,
}

/// The bounce languages mxa can write.
pub(crate) const LANGUAGES: &[&str] = &["en", "fr"];

/// An I/O error in a few words.
pub(crate) fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a folder, expected a file".into(),
        _ => e.to_string(),
    }
}

/// The system's host name, else `localhost`.
fn system_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty() && !h.contains(|c: char| c.is_whitespace() || c.is_control()))
        .unwrap_or_else(|| "localhost".to_string())
}

fn any(port: u16) -> Vec<SocketAddr> {
    vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)]
}

/// The configuration with no file: DESIGN.md's defaults.
pub(crate) fn defaults() -> Config {
    Config {
        file: None,
        hostname: system_hostname(),
        domains: Vec::new(),
        users: None,
        aliases: None,
        spool: PathBuf::from("/var/spool/mxa"),
        mailroot: PathBuf::from("/var/mail"),
        user: "mxa".to_string(),
        smtpd: Smtpd {
            listen: any(25),
            submission: any(587),
            submissions: any(465),
            tls_cert: None,
            tls_key: None,
            max_message_size: 35 << 20,
            max_recipients: 100,
            timeout: Duration::from_secs(5 * 60),
            max_connections: 1000,
            max_connections_per_client: 50,
            trusted_networks: vec![
                IpNet {
                    addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    prefix: 8,
                },
                IpNet {
                    addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
            bare_lf: BareLf::Normalize,
        },
        queue: Queue {
            mda: "mxa-deliver".to_string(),
            relayhost: None,
            relayhost_password_file: None,
            smtp_port: 25,
            routes: BTreeMap::new(),
            lifetime: Duration::from_secs(5 * 86_400),
            delay_warning: Duration::from_secs(4 * 3600),
            bounce_languages: LANGUAGES.iter().map(|s| s.to_string()).collect(),
            max_connections: 20,
            max_connections_per_destination: 10,
        },
        dns: Dns::default(),
        pop3d: Pop3d {
            listen: any(110),
            pop3s: any(995),
        },
        deliver: Deliver {
            recipient_delimiter: "+".to_string(),
            filter: None,
            command_timeout: Duration::from_secs(10 * 60),
        },
        fetch: Vec::new(),
    }
}

/// Reads and checks `file`.
pub(crate) fn from_file(file: &Path) -> Result<Config, ConfigError> {
    let whole = |msg: String| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        key: "-c".into(),
        msg,
    };
    let bytes = std::fs::read(file).map_err(|e| whole(io_msg(&e)))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let ok = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = ok.iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigError {
            file: file.to_path_buf(),
            line,
            key: "-c".into(),
            msg: "not UTF-8 text".into(),
        }
    })?;
    from_str(&text, file)
}

/// Parses and checks `text`, read from `file`.
pub(crate) fn from_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| locate::toml_error(text, file, &e))?;
    let cx = Ctx::new(text, file);
    let mut c = defaults();
    c.file = Some(std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()));
    top(&cx, &raw, &mut c)?;
    if let Some(s) = &raw.smtpd {
        smtpd(&cx, s, &mut c.smtpd)?;
    }
    if let Some(q) = &raw.queue {
        queue(&cx, q, &mut c.queue)?;
    }
    if let Some(l) = raw.dns.as_ref().and_then(|d| d.nameservers.as_ref()) {
        c.dns.nameservers = cx.each(l, "dns.nameservers", addr::parse_nameserver)?;
    }
    if let Some(p) = &raw.pop3d {
        if let Some(l) = &p.listen {
            c.pop3d.listen = cx.each(l, "pop3d.listen", addr::parse_listen)?;
        }
        if let Some(l) = &p.pop3s {
            c.pop3d.pop3s = cx.each(l, "pop3d.pop3s", addr::parse_listen)?;
        }
    }
    if let Some(d) = &raw.deliver {
        deliver(&cx, d, &mut c.deliver)?;
    }
    if let Some(f) = &raw.fetch {
        c.fetch = fetch::tables(&cx, f)?;
    }
    Ok(c)
}

/// `[deliver]`.
fn deliver(cx: &Ctx<'_>, r: &RawDeliver, d: &mut Deliver) -> Result<(), ConfigError> {
    if let Some(v) = &r.recipient_delimiter {
        let s = cx.string(v, "deliver.recipient_delimiter")?;
        if s.chars().any(|c| {
            c.is_alphanumeric() || c.is_whitespace() || c.is_control() || c == '@' || c == '/'
        }) {
            let msg = format!("expected delimiter characters such as \"+\" or \"+-\", found {s:?}");
            return Err(cx.err(v, "deliver.recipient_delimiter", msg));
        }
        d.recipient_delimiter = s;
    }
    if let Some(v) = &r.filter {
        let s = cx.string(v, "deliver.filter")?;
        d.filter = (!s.trim().is_empty()).then_some(s);
    }
    if let Some(v) = &r.command_timeout {
        d.command_timeout = cx.duration(v, "deliver.command_timeout")?;
    }
    Ok(())
}

/// The top-level keys.
fn top(cx: &Ctx<'_>, raw: &RawConfig, c: &mut Config) -> Result<(), ConfigError> {
    if let Some(v) = &raw.hostname {
        c.hostname = cx.word(v, "hostname", "a host name such as \"mx.example.org\"")?;
    }
    if let Some(l) = &raw.domains {
        let mut seen: Vec<String> = Vec::new();
        for v in l.get_ref() {
            let d = cx.check(v, "domains", addr::check_domain)?;
            if seen.contains(&d) {
                return Err(cx.err(v, "domains", format!("{d} is listed twice")));
            }
            seen.push(d);
        }
        c.domains = seen;
    }
    if let Some(v) = &raw.users {
        c.users = cx.existing_file(v, "users")?;
        if let Some(p) = &c.users {
            Users::load(p)?;
        }
    }
    if let Some(v) = &raw.aliases {
        c.aliases = cx.existing_file(v, "aliases")?;
    }
    if let Some(v) = &raw.spool {
        c.spool = cx.folder(v, "spool")?;
    }
    if let Some(v) = &raw.mailroot {
        c.mailroot = cx.folder(v, "mailroot")?;
    }
    if let Some(v) = &raw.user {
        c.user = cx.word(v, "user", "an account name such as \"mxa\"")?;
    }
    Ok(())
}

/// `[smtpd]`.
fn smtpd(cx: &Ctx<'_>, r: &RawSmtpd, s: &mut Smtpd) -> Result<(), ConfigError> {
    for (l, key, out) in [
        (&r.listen, "smtpd.listen", &mut s.listen),
        (&r.submission, "smtpd.submission", &mut s.submission),
        (&r.submissions, "smtpd.submissions", &mut s.submissions),
    ] {
        if let Some(l) = l {
            *out = cx.each(l, key, addr::parse_listen)?;
        }
    }
    if let Some(v) = &r.tls_cert {
        s.tls_cert = cx.existing_file(v, "smtpd.tls_cert")?;
    }
    if let Some(v) = &r.tls_key {
        s.tls_key = cx.existing_file(v, "smtpd.tls_key")?;
    }
    match (&s.tls_cert, &s.tls_key, &r.tls_cert, &r.tls_key) {
        (Some(_), None, Some(v), _) => {
            return Err(cx.err(
                v,
                "smtpd.tls_cert",
                "tls_key is needed with tls_cert".into(),
            ));
        }
        (None, Some(_), _, Some(v)) => {
            return Err(cx.err(v, "smtpd.tls_key", "tls_cert is needed with tls_key".into()));
        }
        _ => {}
    }
    if let Some(v) = &r.max_message_size {
        s.max_message_size = cx.size(v, "smtpd.max_message_size")?;
    }
    let counts = [
        (
            &r.max_recipients,
            "smtpd.max_recipients",
            &mut s.max_recipients,
        ),
        (
            &r.max_connections,
            "smtpd.max_connections",
            &mut s.max_connections,
        ),
        (
            &r.max_connections_per_client,
            "smtpd.max_connections_per_client",
            &mut s.max_connections_per_client,
        ),
    ];
    for (v, key, out) in counts {
        if let Some(v) = v {
            // The range is that of u32, so the conversion cannot fail.
            *out = u32::try_from(cx.uint(v, key, 1, u32::MAX.into())?).unwrap_or(u32::MAX);
        }
    }
    if let Some(v) = &r.timeout {
        s.timeout = cx.duration(v, "smtpd.timeout")?;
    }
    if let Some(l) = &r.trusted_networks {
        s.trusted_networks = cx.each(l, "smtpd.trusted_networks", |t| t.parse::<IpNet>())?;
    }
    if let Some(v) = &r.bare_lf {
        s.bare_lf = match cx.string(v, "smtpd.bare_lf")?.as_str() {
            "normalize" => BareLf::Normalize,
            "reject" => BareLf::Reject,
            other => {
                let msg = format!("expected \"normalize\" or \"reject\", found {other:?}");
                return Err(cx.err(v, "smtpd.bare_lf", msg));
            }
        };
    }
    Ok(())
}

/// `[queue]`.
fn queue(cx: &Ctx<'_>, r: &RawQueue, q: &mut Queue) -> Result<(), ConfigError> {
    if let Some(v) = &r.mda {
        q.mda = cx.nonempty(v, "queue.mda", "a command such as \"mxa-deliver\"")?;
    }
    if let Some(v) = &r.relayhost {
        let s = cx.string(v, "queue.relayhost")?;
        q.relayhost = if s.is_empty() {
            None
        } else {
            Some(addr::parse_relayhost(&s).map_err(|m| cx.err(v, "queue.relayhost", m))?)
        };
    }
    if let Some(v) = &r.relayhost_password_file {
        q.relayhost_password_file = cx.existing_file(v, "queue.relayhost_password_file")?;
    }
    if let Some(v) = &r.smtp_port {
        // 1..=65535 fits in u16.
        q.smtp_port = u16::try_from(cx.uint(v, "queue.smtp_port", 1, 65_535)?).unwrap_or(25);
    }
    if let Some(routes) = &r.routes {
        for (domain, v) in routes {
            let key = format!("queue.routes.{domain}");
            let d = addr::check_domain(domain).map_err(|m| cx.err(v, &key, m))?;
            let port = q.smtp_port;
            let route = cx.check(v, &key, |s| addr::parse_route(s, port))?;
            if q.routes.insert(d.clone(), route).is_some() {
                return Err(cx.err(v, &key, format!("a route for {d} is already given")));
            }
        }
    }
    if let Some(v) = &r.max_connections {
        q.max_connections =
            usize::try_from(cx.uint(v, "queue.max_connections", 1, 1000)?).unwrap_or(1000);
    }
    if let Some(v) = &r.max_connections_per_destination {
        let key = "queue.max_connections_per_destination";
        q.max_connections_per_destination =
            usize::try_from(cx.uint(v, key, 1, 1000)?).unwrap_or(1000);
    }
    if let Some(v) = &r.lifetime {
        q.lifetime = cx.duration(v, "queue.lifetime")?;
    }
    if let Some(v) = &r.delay_warning {
        q.delay_warning = cx.duration(v, "queue.delay_warning")?;
    }
    if let Some(l) = &r.bounce_languages {
        let key = "queue.bounce_languages";
        let mut langs: Vec<String> = Vec::new();
        for v in l.get_ref() {
            let s = cx.string(v, key)?;
            if !LANGUAGES.contains(&s.as_str()) {
                let msg = format!("expected a language mxa writes, \"en\" or \"fr\", found {s:?}");
                return Err(cx.err(v, key, msg));
            }
            if langs.contains(&s) {
                return Err(cx.err(v, key, format!("{s:?} is listed twice")));
            }
            langs.push(s);
        }
        if langs.is_empty() {
            return Err(cx.err(
                l,
                key,
                "expected at least one language, such as [\"en\"]".into(),
            ));
        }
        q.bounce_languages = langs;
    }
    Ok(())
}
