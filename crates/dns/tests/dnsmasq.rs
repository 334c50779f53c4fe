//! mxa-dns against a real DNS server: dnsmasq on a loopback port, serving
//! a `test.` zone built from its command line. Without dnsmasq the tests
//! print a SKIP line, or fail under `MXA_REQUIRE_PEERS=1` (as CI sets), as
//! the other peer tests of the workspace do.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mxa_dns::{DnsError, Host, Resolver};

/// The zone: every record the tests below ask about.
const RECORDS: &[&str] = &[
    // Everything under test. that is not listed here is NXDOMAIN.
    "--local=/test/",
    // RFC 5321 §5.1 ordering: 10, then 20 and 20 (shuffled), then 30.
    "--mx-host=multi.test,mx1.multi.test,10",
    "--mx-host=multi.test,mx2.multi.test,20",
    "--mx-host=multi.test,mx3.multi.test,20",
    "--mx-host=multi.test,mx4.multi.test,30",
    "--host-record=mx1.multi.test,192.0.2.1,2001:db8::1",
    "--host-record=mx2.multi.test,192.0.2.2",
    "--host-record=mx3.multi.test,192.0.2.3",
    "--host-record=mx4.multi.test,2001:db8::4",
    // No MX: the implicit MX.
    "--host-record=implicit.test,192.0.2.10,2001:db8::10",
    // RFC 7505: "MX 0 .".
    "--mx-host=nullmx.test,.,0",
    // An IDN domain, bücher.test, in A-labels.
    "--mx-host=xn--bcher-kva.test,mx1.multi.test,5",
    // A name that exists without MX, A or AAAA.
    "--txt-record=textonly.test,nothing here",
    // MX hosts none of which exists.
    "--mx-host=dangling.test,ghost.test,10",
    // Every query under fail.test is REFUSED (no upstream is configured).
    "--server=/fail.test/#",
    // One MX host whose addresses cannot be had now, one that works.
    "--mx-host=partly.test,mx.fail.test,10",
    "--mx-host=partly.test,mx2.multi.test,20",
    // Only a host that cannot be resolved now.
    "--mx-host=stuck.test,mx.fail.test,10",
    // A PTR that its name's A records do not confirm (a forged name).
    "--ptr-record=99.2.0.192.in-addr.arpa,mx1.multi.test",
];

#[test]
fn mx_records_by_preference() {
    let Some(dns) = Dnsmasq::start() else { return };
    let hosts = dns.resolver().mail_hosts("multi.test").expect("multi.test");
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names.len(), 4, "{hosts:?}");
    assert_eq!(names[0], "mx1.multi.test");
    assert_eq!(names[3], "mx4.multi.test");
    let mut middle = names[1..3].to_vec();
    middle.sort();
    assert_eq!(middle, ["mx2.multi.test", "mx3.multi.test"]);
    let prefs: Vec<u16> = hosts.iter().map(|h| h.preference).collect();
    assert_eq!(prefs, [10, 20, 20, 30]);
    // RFC 3596 addresses, IPv6 first.
    assert_eq!(hosts[0].addrs, [ip("2001:db8::1"), ip("192.0.2.1")]);
    assert_eq!(hosts[3].addrs, [ip("2001:db8::4")]);
}

// RFC 5321 §5.1: equal preferences are tried in random order.
#[test]
fn equal_preferences_are_shuffled() {
    let Some(dns) = Dnsmasq::start() else { return };
    let resolver = dns.resolver();
    let (mut mx2_first, mut mx3_first) = (0, 0);
    for _ in 0..100 {
        let hosts = resolver.mail_hosts("multi.test").expect("multi.test");
        assert_eq!(hosts[0].name, "mx1.multi.test");
        match hosts[1].name.as_str() {
            "mx2.multi.test" => mx2_first += 1,
            "mx3.multi.test" => mx3_first += 1,
            other => panic!("unexpected second host {other}"),
        }
        assert_eq!(hosts[3].name, "mx4.multi.test");
    }
    // Each order has probability 1/2; missing one in 100 tries is 2^-99.
    assert!(mx2_first > 0 && mx3_first > 0, "{mx2_first}/{mx3_first}");
}

// RFC 5321 §5.1: no MX record, so the domain itself, preference 0.
#[test]
fn implicit_mx() {
    let Some(dns) = Dnsmasq::start() else { return };
    let hosts = dns
        .resolver()
        .mail_hosts("implicit.test")
        .expect("implicit");
    assert_eq!(
        hosts,
        [Host {
            name: "implicit.test".into(),
            preference: 0,
            addrs: vec![ip("2001:db8::10"), ip("192.0.2.10")],
        }]
    );
}

// RFC 7505 §3.
#[test]
fn null_mx() {
    let Some(dns) = Dnsmasq::start() else { return };
    let err = dns
        .resolver()
        .mail_hosts("nullmx.test")
        .expect_err("null MX");
    assert!(
        matches!(err, DnsError::NullMx(ref d) if d == "nullmx.test"),
        "{err}"
    );
    assert_eq!(err.status(), "5.1.10");
    assert!(!err.is_temporary());
}

#[test]
fn nxdomain_is_permanent() {
    let Some(dns) = Dnsmasq::start() else { return };
    let resolver = dns.resolver();
    let err = resolver.mail_hosts("nope.test").expect_err("NXDOMAIN");
    assert!(
        matches!(err, DnsError::NoSuchDomain(ref d) if d == "nope.test"),
        "{err}"
    );
    assert_eq!((err.status(), err.is_temporary()), ("5.1.2", false));
    let err = resolver.addresses("nope.test").expect_err("NXDOMAIN");
    assert!(matches!(err, DnsError::NoSuchDomain(_)), "{err}");
}

#[test]
fn no_hosts_is_permanent() {
    let Some(dns) = Dnsmasq::start() else { return };
    let resolver = dns.resolver();
    for domain in ["textonly.test", "dangling.test"] {
        let err = resolver.mail_hosts(domain).expect_err(domain);
        assert!(
            matches!(err, DnsError::NoHosts(ref d) if d == domain),
            "{err}"
        );
        assert_eq!((err.status(), err.is_temporary()), ("5.1.2", false));
    }
}

// RFC 5890/5891: U-labels are looked up as A-labels.
#[test]
fn idn_domain() {
    let Some(dns) = Dnsmasq::start() else { return };
    let resolver = dns.resolver();
    for domain in ["bücher.test", "BÜCHER.TEST.", "xn--bcher-kva.test"] {
        let hosts = resolver.mail_hosts(domain).expect(domain);
        assert_eq!(hosts.len(), 1, "{domain}: {hosts:?}");
        assert_eq!(
            (hosts[0].name.as_str(), hosts[0].preference),
            ("mx1.multi.test", 5)
        );
    }
}

#[test]
fn refused_is_temporary() {
    let Some(dns) = Dnsmasq::start() else { return };
    let resolver = dns.resolver();
    let err = resolver.mail_hosts("fail.test").expect_err("REFUSED");
    assert!(
        matches!(err, DnsError::Temporary(ref d, _) if d == "fail.test"),
        "{err}"
    );
    assert_eq!((err.status(), err.is_temporary()), ("4.4.3", true));
    // The only MX host cannot be resolved now: temporary, naming it.
    let err = resolver.mail_hosts("stuck.test").expect_err("stuck");
    assert!(
        matches!(err, DnsError::Temporary(_, ref why) if why.starts_with("mx.fail.test: ")),
        "{err}"
    );
    let err = resolver.addresses("mx.fail.test").expect_err("REFUSED");
    assert!(err.is_temporary(), "{err}");
}

// The host that cannot be resolved is left out; the other is tried.
#[test]
fn unresolvable_mx_host_is_skipped() {
    let Some(dns) = Dnsmasq::start() else { return };
    let hosts = dns.resolver().mail_hosts("partly.test").expect("partly");
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["mx2.multi.test"]);
}

#[test]
fn addresses_of_a_host() {
    let Some(dns) = Dnsmasq::start() else { return };
    let resolver = dns.resolver();
    let addrs = resolver.addresses("mx1.multi.test").expect("mx1");
    assert_eq!(addrs, [ip("2001:db8::1"), ip("192.0.2.1")]);
    let addrs = resolver.addresses("mx2.multi.test.").expect("mx2");
    assert_eq!(addrs, [ip("192.0.2.2")]);
    let err = resolver.addresses("textonly.test").expect_err("no address");
    assert!(matches!(err, DnsError::NoHosts(_)), "{err}");
    assert_eq!(
        resolver.addresses("[IPv6:::1]").expect("literal"),
        [ip("::1")]
    );
}

/// mxa-smtpd's client names: forward-confirmed reverse DNS.
#[test]
fn client_names_are_forward_confirmed() {
    let Some(dns) = Dnsmasq::start() else { return };
    let resolver = dns.resolver();
    // --host-record makes the PTR records too.
    assert_eq!(
        resolver.client_name(ip("192.0.2.1")).as_deref(),
        Some("mx1.multi.test")
    );
    assert_eq!(
        resolver.client_name(ip("::ffff:192.0.2.2")).as_deref(),
        Some("mx2.multi.test")
    );
    assert_eq!(
        resolver.client_name(ip("2001:db8::4")).as_deref(),
        Some("mx4.multi.test")
    );
    // 192.0.2.99 claims to be mx1.multi.test, whose A record says no.
    assert_eq!(resolver.client_name(ip("192.0.2.99")), None);
    // No PTR at all.
    assert_eq!(resolver.client_name(ip("198.51.100.7")), None);
}

// The queue runner calls from many threads at once.
#[test]
fn shared_by_threads() {
    let Some(dns) = Dnsmasq::start() else { return };
    let resolver = dns.resolver();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let resolver = &resolver;
                s.spawn(move || {
                    let domain = if i % 2 == 0 {
                        "multi.test"
                    } else {
                        "implicit.test"
                    };
                    for _ in 0..20 {
                        assert!(!resolver.mail_hosts(domain).expect(domain).is_empty());
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    });
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A running dnsmasq, killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Dnsmasq {
    /// Starts dnsmasq with [`RECORDS`] on a free port, or skips (None).
    fn start() -> Option<Dnsmasq> {
        let binary = find_dnsmasq()?;
        // The port is free when we look; another process may take it before
        // dnsmasq binds, so try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_udp_port();
            let log = tempfile::NamedTempFile::new().expect("log file");
            let child = Command::new(&binary)
                .args([
                    "--no-daemon",
                    &format!("--port={port}"),
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--pid-file",
                    "--log-facility=-",
                    "--log-queries",
                ])
                .args(RECORDS)
                .stdin(Stdio::null())
                .stdout(log.reopen().expect("log"))
                .stderr(log.reopen().expect("log"))
                .spawn()
                .expect("run dnsmasq");
            let mut dns = Dnsmasq {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log,
            };
            if dns.wait_ready() {
                return Some(dns);
            }
            last_log = std::fs::read_to_string(dns.log.path()).unwrap_or_default();
        }
        panic!("dnsmasq did not start:\n{last_log}");
    }

    /// Waits until dnsmasq accepts TCP on its port (it binds UDP first).
    fn wait_ready(&mut self) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(self.addr).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn resolver(&self) -> Resolver {
        Resolver::new(&[self.addr]).expect("resolver")
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dnsmasq (Debian's dnsmasq-base) on PATH or in /usr/sbin, which an
/// ordinary user's PATH may lack. Missing: fails under
/// `MXA_REQUIRE_PEERS=1`, else prints a SKIP line.
fn find_dnsmasq() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join("dnsmasq"))
        .find(|p| p.is_file());
    if found.is_none() {
        let why = "peer dnsmasq is not installed (.ci/run installs dnsmasq-base)";
        let required = std::env::var("MXA_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        assert!(!required, "MXA_REQUIRE_PEERS=1 but {why}");
        eprintln!("SKIP: {why}");
    }
    found
}

/// A UDP port on 127.0.0.1 free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind")
        .port()
}
