//! The queries themselves, asynchronous, on hickory's resolver. Each answer
//! is classified once ([`Answer`]) so that the rules of RFC 5321 §5.1 read
//! as plain matches: no MX record means the implicit MX, NXDOMAIN is
//! permanent, anything else that fails is temporary.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use crate::mx::{self, Plan};
use crate::name::{self, Target};
use crate::{DnsError, Host};

/// One query's outcome.
#[derive(Debug)]
enum Answer<T> {
    /// Records of the type asked for.
    Found(T),
    /// The name exists, without records of that type (NODATA).
    NoData,
    /// The name does not exist (NXDOMAIN, RFC 1035 §4.1.1 RCODE 3).
    NxDomain,
    /// SERVFAIL, REFUSED, a timeout, a network error: try again later.
    Failed(String),
}

/// RFC 5321 §5.1 in full: MX records, else the implicit MX, with each
/// exchange's addresses. Errors name the domain as the caller wrote it.
pub(crate) async fn mail_hosts(
    resolver: &TokioResolver,
    input: &str,
) -> Result<Vec<Host>, DnsError> {
    let domain = match name::parse(input)? {
        Target::Literal(ip) => return Ok(vec![literal_host(ip)]),
        Target::Domain(domain) => domain,
    };
    let fqdn = fqdn(&domain).ok_or_else(|| DnsError::BadName(input.to_string()))?;
    let records: Vec<(u16, String)> = match query(resolver, &fqdn, RecordType::MX).await {
        Answer::Found(data) => data
            .into_iter()
            .filter_map(|d| match d {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect(),
        Answer::NoData => Vec::new(),
        Answer::NxDomain => return Err(DnsError::NoSuchDomain(input.to_string())),
        Answer::Failed(why) => return Err(DnsError::Temporary(input.to_string(), why)),
    };
    if records.is_empty() {
        // The implicit MX (RFC 5321 §5.1): the domain itself, preference 0.
        return match addresses_of(resolver, fqdn).await {
            Answer::Found(addrs) => Ok(vec![Host {
                name: domain,
                preference: 0,
                addrs,
            }]),
            Answer::NoData => Err(DnsError::NoHosts(input.to_string())),
            Answer::NxDomain => Err(DnsError::NoSuchDomain(input.to_string())),
            Answer::Failed(why) => Err(DnsError::Temporary(input.to_string(), why)),
        };
    }
    match mx::plan(&records, &mut mx::system_random) {
        Plan::NullMx => Err(DnsError::NullMx(input.to_string())),
        Plan::Exchanges(list) => exchanges(resolver, list, input).await,
    }
}

/// The addresses of a host name or literal, for relay hosts and routes.
pub(crate) async fn addresses(
    resolver: &TokioResolver,
    input: &str,
) -> Result<Vec<IpAddr>, DnsError> {
    let host = match name::parse(input)? {
        Target::Literal(ip) => return Ok(vec![ip]),
        Target::Domain(host) => host,
    };
    let fqdn = fqdn(&host).ok_or_else(|| DnsError::BadName(input.to_string()))?;
    match addresses_of(resolver, fqdn).await {
        Answer::Found(addrs) => Ok(addrs),
        Answer::NoData => Err(DnsError::NoHosts(input.to_string())),
        Answer::NxDomain => Err(DnsError::NoSuchDomain(input.to_string())),
        Answer::Failed(why) => Err(DnsError::Temporary(input.to_string(), why)),
    }
}

/// The forward-confirmed name of a client address (as Postfix's smtpd
/// finds it): a PTR name whose A or AAAA records include the address.
/// None when there is no PTR, no name confirms, or DNS fails.
pub(crate) async fn client_name(resolver: &TokioResolver, ip: IpAddr) -> Option<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let Answer::Found(data) = query(resolver, &Name::from(ip), RecordType::PTR).await else {
        return None;
    };
    for d in data.into_iter().take(4) {
        let RData::PTR(ptr) = d else { continue };
        if let Answer::Found(addrs) = addresses_of(resolver, ptr.0.clone()).await
            && addrs.contains(&ip)
        {
            let name = ptr.0.to_ascii();
            return Some(name.trim_end_matches('.').to_string());
        }
    }
    None
}

/// Resolves the exchanges concurrently, keeping their order. An exchange
/// without addresses is skipped: nothing could be done with it, and the
/// runner would only log a failed connection. When none is left, the
/// outcome is temporary if any lookup failed temporarily (the next try may
/// find addresses), else permanent.
async fn exchanges(
    resolver: &TokioResolver,
    list: Vec<(u16, String)>,
    input: &str,
) -> Result<Vec<Host>, DnsError> {
    let mut tasks = Vec::with_capacity(list.len());
    for (preference, name) in list {
        let resolver = resolver.clone();
        let task = tokio::spawn(async move {
            let answer = match fqdn(&name) {
                Some(fqdn) => addresses_of(&resolver, fqdn).await,
                None => Answer::NoData,
            };
            (preference, name, answer)
        });
        tasks.push(task);
    }
    let mut hosts = Vec::new();
    let mut failure = None;
    for task in tasks {
        let (preference, name, answer) = match task.await {
            Ok(done) => done,
            Err(e) => {
                failure.get_or_insert_with(|| format!("address lookup stopped: {e}"));
                continue;
            }
        };
        match answer {
            Answer::Found(addrs) => hosts.push(Host {
                name,
                preference,
                addrs,
            }),
            Answer::NoData | Answer::NxDomain => {}
            Answer::Failed(why) => {
                failure.get_or_insert_with(|| format!("{name}: {why}"));
            }
        }
    }
    match (hosts.is_empty(), failure) {
        (false, _) => Ok(hosts),
        (true, Some(why)) => Err(DnsError::Temporary(input.to_string(), why)),
        (true, None) => Err(DnsError::NoHosts(input.to_string())),
    }
}

/// AAAA and A of `name`, asked together (RFC 3596), IPv6 first. One family
/// failing while the other answers is not an error: the addresses found
/// are enough to try.
async fn addresses_of(resolver: &TokioResolver, name: Name) -> Answer<Vec<IpAddr>> {
    let (v6, v4) = tokio::join!(
        query(resolver, &name, RecordType::AAAA),
        query(resolver, &name, RecordType::A)
    );
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut outcome = Answer::NoData;
    for answer in [v6, v4] {
        match answer {
            Answer::Found(data) => {
                for d in data {
                    let ip = match d {
                        RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                        RData::A(a) => IpAddr::V4(a.0),
                        _ => continue,
                    };
                    if !addrs.contains(&ip) {
                        addrs.push(ip);
                    }
                }
            }
            // A failure outweighs a missing family; NXDOMAIN outweighs
            // NODATA (both queries name the same owner, so they agree
            // unless the zone changed in between).
            Answer::Failed(why) => outcome = Answer::Failed(why),
            Answer::NxDomain if matches!(outcome, Answer::NoData) => outcome = Answer::NxDomain,
            Answer::NxDomain | Answer::NoData => {}
        }
    }
    if addrs.is_empty() {
        outcome
    } else {
        Answer::Found(addrs)
    }
}

/// One query, classified. CNAMEs are followed by hickory; only records of
/// the type asked for are kept.
async fn query(resolver: &TokioResolver, name: &Name, rtype: RecordType) -> Answer<Vec<RData>> {
    match resolver.lookup(name.clone(), rtype).await {
        Ok(lookup) => {
            let data: Vec<RData> = lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .map(|r| r.data.clone())
                .collect();
            if data.is_empty() {
                Answer::NoData
            } else {
                Answer::Found(data)
            }
        }
        Err(e) if e.is_nx_domain() => Answer::NxDomain,
        Err(e) if e.is_no_records_found() => Answer::NoData,
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// `name` (A-labels, no trailing dot) as a fully qualified name, so that
/// no search list of resolv.conf is ever appended: mail domains are
/// absolute (RFC 5321 §2.3.5).
fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

/// The host for an address literal: named as RFC 5321 §4.1.3 writes it.
fn literal_host(ip: IpAddr) -> Host {
    let name = match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    };
    Host {
        name,
        preference: 0,
        addrs: vec![ip],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_hosts_are_named_as_rfc_5321_writes_them() {
        let v4 = literal_host("192.0.2.1".parse().expect("test address"));
        assert_eq!(v4.name, "[192.0.2.1]");
        let v6 = literal_host("2001:db8::1".parse().expect("test address"));
        assert_eq!(v6.name, "[IPv6:2001:db8::1]");
        assert_eq!(v6.preference, 0);
    }

    #[test]
    fn names_are_absolute() {
        let name = fqdn("mx.example").expect("valid");
        assert!(name.is_fqdn());
        assert_eq!(name.to_ascii(), "mx.example.");
    }
}
