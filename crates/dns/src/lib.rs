//! Where mail for a domain goes. [`Resolver::mail_hosts`] turns a
//! recipient's domain into the [`Host`]s to try, in order, each with its
//! addresses; [`Resolver::addresses`] resolves one host name (a relay host,
//! a route). Failures are a [`DnsError`], temporary or permanent, with the
//! enhanced status code (RFC 3463) a bounce or a retry should carry.
//!
//! The rules followed:
//! - RFC 5321 §5.1: MX records sorted by preference, equal preferences in
//!   random order; without MX records, the domain itself as an implicit MX
//!   of preference 0 when it has an address; §4.1.3 address literals
//!   (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) need no DNS at all.
//! - RFC 7505: a null MX (`MX 0 .`) means the domain accepts no mail.
//! - RFC 3596: AAAA records beside A; each host lists its IPv6 addresses
//!   first, then IPv4, in the order the server gave them.
//! - RFC 5890 and 5891 (IDNA 2008, with the UTS #46 mapping): a domain in
//!   U-labels (`bücher.example`) is looked up, and reported in
//!   [`Host::name`], as A-labels (`xn--bcher-kva.example`).
//!
//! The queries run on hickory-resolver, asynchronous, inside a small tokio
//! runtime that each [`Resolver`] owns; the API is blocking and the
//! resolver can be shared by threads (it is `Send + Sync`). Do not call it
//! from inside an async task: blocking there would stall that runtime.

mod lookup;
mod mx;
mod name;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// How long one query may wait for its answer before it is sent again.
/// Resolvers answer in milliseconds or, when they recurse, in a second or
/// two; five seconds is glibc's and hickory's default.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a query is sent before it fails (glibc's default).
pub const QUERY_ATTEMPTS: usize = 2;
/// The most one call may take, whatever the servers do: an MX query and
/// then the exchanges' address queries, concurrently, each bounded by
/// [`QUERY_TIMEOUT`] × [`QUERY_ATTEMPTS`], with room to spare. The queue
/// runner holds a delivery slot meanwhile.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(30);

/// How long a client's name may take: the client is waiting for its
/// greeting meanwhile.
pub const CLIENT_NAME_DEADLINE: Duration = Duration::from_secs(10);
/// Worker threads of the resolver's runtime: queries mostly wait on the
/// network, so two serve many delivery threads.
const RUNTIME_THREADS: usize = 2;

/// A host to deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name in A-labels, lower case, without the trailing dot; for an
    /// address literal, the literal as RFC 5321 §4.1.3 writes it
    /// (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
    pub name: String,
    /// The MX preference (0 for the implicit MX and for literals).
    pub preference: u16,
    /// Its addresses: IPv6 first, then IPv4, in the order resolved. Never
    /// empty in what [`Resolver::mail_hosts`] returns.
    pub addrs: Vec<IpAddr>,
}

/// Why no host could be found. Each error names the domain as the caller
/// gave it.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// NXDOMAIN: the domain does not exist. Permanent, 5.1.2.
    #[error("{0}: the domain does not exist")]
    NoSuchDomain(String),
    /// A null MX (RFC 7505). Permanent, 5.1.10.
    #[error("{0}: the domain accepts no mail (null MX, RFC 7505)")]
    NullMx(String),
    /// No MX record and no address, or MX hosts none of which has an
    /// address. Permanent, 5.1.2.
    #[error("{0}: no mail server found (no MX, A or AAAA record)")]
    NoHosts(String),
    /// SERVFAIL, REFUSED, a timeout, no usable resolver configuration: the
    /// second field says which. Temporary, 4.4.3.
    #[error("{0}: DNS lookup failed: {1}")]
    Temporary(String, String),
    /// Not a domain name nor an address literal. Permanent, 5.1.3.
    #[error("{0}: not a valid domain name")]
    BadName(String),
}

impl DnsError {
    /// Whether a later try may succeed (the message stays queued).
    pub fn is_temporary(&self) -> bool {
        matches!(self, DnsError::Temporary(..))
    }

    /// The enhanced status code (RFC 3463; 5.1.10 is RFC 7505 §4.2's).
    pub fn status(&self) -> &'static str {
        match self {
            DnsError::NoSuchDomain(_) | DnsError::NoHosts(_) => "5.1.2",
            DnsError::NullMx(_) => "5.1.10",
            DnsError::Temporary(..) => "4.4.3",
            // "Bad destination mailbox address syntax": the domain is part
            // of the address.
            DnsError::BadName(_) => "5.1.3",
        }
    }
}

/// `address` (`local@domain`) with its domain in A-labels (RFC 5890),
/// when its local part is ASCII: such an address then needs no SMTPUTF8
/// (RFC 6531 §3.2 leaves the domain's form to the client). Any other
/// address (a non-ASCII local part, no `@`, a domain that does not
/// convert) comes back as it was.
pub fn ascii_domain(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) if local.is_ascii() && !domain.is_ascii() => {
            match name::parse(domain) {
                Ok(name::Target::Domain(d)) => format!("{local}@{d}"),
                _ => address.to_string(),
            }
        }
        _ => address.to_string(),
    }
}

/// A blocking DNS resolver for mail routing. Cheap to share by reference
/// or `Arc` among threads; hickory's cache (sized and timed by the records'
/// TTLs) is its only cache.
pub struct Resolver {
    runtime: tokio::runtime::Runtime,
    inner: TokioResolver,
    nameservers: Vec<SocketAddr>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("nameservers", &self.nameservers)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver asking `nameservers` (from `[dns] nameservers`, over UDP
    /// then TCP for truncated answers), or, when empty, the servers of the
    /// system's `/etc/resolv.conf`, which also brings in `/etc/hosts` as
    /// the system resolver would. Configured servers are asked alone: the
    /// hosts file is not read. A missing or unreadable resolv.conf, or a
    /// runtime that cannot start, is [`DnsError::Temporary`].
    pub fn new(nameservers: &[SocketAddr]) -> Result<Resolver, DnsError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            DnsError::Temporary(what.to_string(), e.to_string())
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("mxa-dns")
            .enable_all()
            .build()
            .map_err(|e| failed("resolver", &e))?;
        let provider = TokioRuntimeProvider::default();
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| failed("/etc/resolv.conf", &e))?
        } else {
            let servers = nameservers.iter().map(|s| server(*s)).collect();
            let config = ResolverConfig::from_parts(None, Vec::new(), servers);
            let mut builder = TokioResolver::builder_with_config(config, provider);
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        tune(builder.options_mut());
        // Hickory's connection tasks are spawned on the current runtime.
        let inner = {
            let _entered = runtime.enter();
            builder.build().map_err(|e| failed("resolver", &e))?
        };
        Ok(Resolver {
            runtime,
            inner,
            nameservers: nameservers.to_vec(),
        })
    }

    /// The hosts to try for `domain`, in order (RFC 5321 §5.1):
    /// - an address literal (`[192.0.2.1]`, `[IPv6:…]`, or a bare address)
    ///   is that address, with no DNS query;
    /// - the domain, possibly in U-labels, is converted to A-labels, then
    ///   its MX records are sorted by preference, equal preferences
    ///   shuffled, at most ten kept, each with its AAAA and A addresses;
    /// - a null MX ("MX 0 .") alone is [`DnsError::NullMx`]; beside other
    ///   MX records it is ignored;
    /// - with no MX record, the domain itself (implicit MX, preference 0)
    ///   if it has an address, else [`DnsError::NoHosts`];
    /// - NXDOMAIN for the domain is [`DnsError::NoSuchDomain`]; a failed
    ///   MX query is [`DnsError::Temporary`].
    ///
    /// MX hosts without an address are left out. When that leaves none,
    /// the result is [`DnsError::Temporary`] if any address lookup failed
    /// temporarily, else [`DnsError::NoHosts`].
    pub fn mail_hosts(&self, domain: &str) -> Result<Vec<Host>, DnsError> {
        self.run(domain, lookup::mail_hosts(&self.inner, domain))
    }

    /// The A and AAAA addresses of a host name (relay host, route), IPv6
    /// first; an address literal or bare address is returned as is. A name
    /// with no address is [`DnsError::NoHosts`].
    pub fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        self.run(host, lookup::addresses(&self.inner, host))
    }

    /// The client's forward-confirmed name (PTR, then A/AAAA back to the
    /// same address), for `Received:` lines; None when it has none or the
    /// DNS does not answer within [`CLIENT_NAME_DEADLINE`]. Blocking.
    pub fn client_name(&self, ip: IpAddr) -> Option<String> {
        self.runtime.block_on(async {
            tokio::time::timeout(CLIENT_NAME_DEADLINE, lookup::client_name(&self.inner, ip))
                .await
                .ok()
                .flatten()
        })
    }

    /// Runs `lookup` to completion on our runtime, within
    /// [`LOOKUP_DEADLINE`].
    fn run<T>(
        &self,
        what: &str,
        lookup: impl Future<Output = Result<T, DnsError>>,
    ) -> Result<T, DnsError> {
        self.runtime
            .block_on(async { tokio::time::timeout(LOOKUP_DEADLINE, lookup).await })
            .unwrap_or_else(|_| {
                Err(DnsError::Temporary(
                    what.to_string(),
                    format!("no answer within {}s", LOOKUP_DEADLINE.as_secs()),
                ))
            })
    }
}

/// A configured server: UDP, and TCP for answers too long for UDP, on its
/// port. Its NXDOMAIN is trusted (not asked again of the next server).
fn server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

/// Our timeouts over hickory's defaults or resolv.conf's options.
fn tune(options: &mut ResolverOpts) {
    options.timeout = QUERY_TIMEOUT;
    // Hickory counts retries after the first try, not tries.
    options.attempts = QUERY_ATTEMPTS - 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_resolver() -> Resolver {
        // Port 9 (discard) on loopback: nothing answers DNS there, so any
        // query would fail; the tests below must not send one.
        Resolver::new(&["127.0.0.1:9".parse().expect("test address")]).expect("resolver")
    }

    #[test]
    fn ascii_domains_for_ascii_local_parts() {
        assert_eq!(
            ascii_domain("anna@bücher.example"),
            "anna@xn--bcher-kva.example"
        );
        assert_eq!(ascii_domain("anna@example.org"), "anna@example.org");
        // A UTF-8 local part needs SMTPUTF8 whatever the domain.
        assert_eq!(ascii_domain("jöe@bücher.example"), "jöe@bücher.example");
        assert_eq!(ascii_domain(""), "");
        assert_eq!(ascii_domain("x@bü..cher"), "x@bü..cher");
    }

    #[test]
    fn shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Resolver>();
    }

    #[test]
    fn system_configuration() {
        match Resolver::new(&[]) {
            Ok(r) => assert!(r.nameservers.is_empty()),
            Err(e) => {
                assert!(!std::path::Path::new("/etc/resolv.conf").exists(), "{e}");
                assert!(e.is_temporary(), "{e}");
            }
        }
    }

    // RFC 5321 §4.1.3: an address literal needs no DNS.
    #[test]
    fn literals_without_dns() {
        let r = unreachable_resolver();
        let hosts = r.mail_hosts("[192.0.2.1]").expect("literal");
        assert_eq!(
            hosts,
            vec![Host {
                name: "[192.0.2.1]".into(),
                preference: 0,
                addrs: vec!["192.0.2.1".parse().expect("test address")],
            }]
        );
        let hosts = r.mail_hosts("[IPv6:2001:db8::25]").expect("literal");
        assert_eq!(hosts[0].name, "[IPv6:2001:db8::25]");
        assert_eq!(
            hosts[0].addrs,
            vec!["2001:db8::25".parse::<IpAddr>().expect("ip")]
        );
        let addrs = r.addresses("198.51.100.3").expect("bare address");
        assert_eq!(addrs, vec!["198.51.100.3".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn bad_names_without_dns() {
        let r = unreachable_resolver();
        for bad in ["[300.1.1.1]", "exa mple.org", "a..b", ""] {
            let err = r.mail_hosts(bad).expect_err(bad);
            assert!(matches!(err, DnsError::BadName(ref s) if s == bad), "{err}");
            assert!(!err.is_temporary());
            assert_eq!(err.status(), "5.1.3");
        }
    }

    #[test]
    fn classes_and_codes() {
        let d = || "example.org".to_string();
        let table = [
            (DnsError::NoSuchDomain(d()), false, "5.1.2"),
            (DnsError::NullMx(d()), false, "5.1.10"),
            (DnsError::NoHosts(d()), false, "5.1.2"),
            (DnsError::Temporary(d(), "SERVFAIL".into()), true, "4.4.3"),
            (DnsError::BadName(d()), false, "5.1.3"),
        ];
        for (err, temporary, status) in table {
            assert_eq!(err.is_temporary(), temporary, "{err}");
            assert_eq!(err.status(), status, "{err}");
        }
        assert_eq!(
            DnsError::NullMx(d()).to_string(),
            "example.org: the domain accepts no mail (null MX, RFC 7505)"
        );
    }
}
