//! MX records to the ordered list of exchanges to try, with no I/O:
//! RFC 5321 §5.1 (lowest preference first, equal preferences in random
//! order) and RFC 7505 (null MX).

/// How many MX hosts we resolve and hand on, at most. Postfix tries five
/// addresses and two sessions per delivery; ten names leave room for that
/// while bounding the address lookups a hostile domain can make us do.
pub(crate) const MAX_MX_HOSTS: usize = 10;

/// What a domain's MX records say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Only "MX 0 ." (RFC 7505 §3): the domain accepts no mail.
    NullMx,
    /// The exchanges to try, in order: (preference, A-label name).
    Exchanges(Vec<(u16, String)>),
}

/// Orders `records` — (preference, exchange with or without the trailing
/// dot; "" or "." is the root) — drawing shuffles from `random(n)`, which
/// returns a number below `n`.
///
/// A root exchange is a null MX. RFC 7505 §3 forbids it next to other MX
/// records; when it is there anyway we skip it and use the others, since it
/// names nothing to connect to (Postfix does the same). A name listed twice
/// keeps its best preference.
pub(crate) fn plan(records: &[(u16, String)], random: &mut dyn FnMut(usize) -> usize) -> Plan {
    let mut hosts: Vec<(u16, String)> = records
        .iter()
        .map(|(pref, name)| (*pref, name.trim_end_matches('.').to_ascii_lowercase()))
        .filter(|(_, name)| !name.is_empty())
        .collect();
    if hosts.is_empty() {
        return Plan::NullMx;
    }
    hosts.sort();
    let mut seen = std::collections::HashSet::new();
    hosts.retain(|(_, name)| seen.insert(name.clone()));
    // Still sorted by (preference, name): shuffle each run of equal
    // preference (Fisher–Yates).
    let mut start = 0;
    while start < hosts.len() {
        let pref = hosts[start].0;
        let end = start + hosts[start..].iter().take_while(|h| h.0 == pref).count();
        shuffle(&mut hosts[start..end], random);
        start = end;
    }
    hosts.truncate(MAX_MX_HOSTS);
    Plan::Exchanges(hosts)
}

fn shuffle<T>(items: &mut [T], random: &mut dyn FnMut(usize) -> usize) {
    for i in (1..items.len()).rev() {
        let j = random(i + 1).min(i);
        items.swap(i, j);
    }
}

/// A number below `n` from the system's random source, for [`plan`].
/// Should the source fail (it does not on Linux once booted) the order
/// stays sorted by name: still a correct order, only not a shuffled one.
pub(crate) fn system_random(n: usize) -> usize {
    match getrandom::u64() {
        // The modulo bias over 2^64 is far below anything load-spreading
        // could notice.
        Ok(r) if n > 0 => (r % n as u64) as usize,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, n)| (*p, n.to_string())).collect()
    }

    fn never_swap(_: usize) -> usize {
        // Fisher–Yates with j == i each step leaves the order alone.
        usize::MAX
    }

    // RFC 5321 §5.1: lower preference first.
    #[test]
    fn by_preference() {
        let got = plan(
            &records(&[(20, "b.example."), (10, "A.example."), (30, "c.example")]),
            &mut never_swap,
        );
        assert_eq!(
            got,
            Plan::Exchanges(records(&[
                (10, "a.example"),
                (20, "b.example"),
                (30, "c.example")
            ]))
        );
    }

    // RFC 5321 §5.1: equal preferences in random order, never across
    // preferences.
    #[test]
    fn equal_preferences_shuffled() {
        let input = records(&[(5, "x."), (10, "a."), (10, "b."), (10, "c."), (20, "z.")]);
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..200 {
            let Plan::Exchanges(got) = plan(&input, &mut system_random) else {
                panic!("not a null MX");
            };
            let names: Vec<&str> = got.iter().map(|h| h.1.as_str()).collect();
            assert_eq!(names[0], "x");
            assert_eq!(names[4], "z");
            let mut middle = names[1..4].to_vec();
            firsts.insert(middle[0].to_string());
            middle.sort();
            assert_eq!(middle, ["a", "b", "c"]);
        }
        assert_eq!(firsts.len(), 3, "each equal host comes first sometimes");
    }

    // RFC 7505 §3: "MX 0 ." alone is a null MX.
    #[test]
    fn null_mx() {
        assert_eq!(plan(&records(&[(0, ".")]), &mut never_swap), Plan::NullMx);
        assert_eq!(plan(&records(&[(0, "")]), &mut never_swap), Plan::NullMx);
        // A preference other than 0 breaks the RFC's letter, not its sense.
        assert_eq!(plan(&records(&[(10, ".")]), &mut never_swap), Plan::NullMx);
    }

    #[test]
    fn null_mx_beside_others_is_skipped() {
        let got = plan(&records(&[(0, "."), (10, "mx.example.")]), &mut never_swap);
        assert_eq!(got, Plan::Exchanges(records(&[(10, "mx.example")])));
    }

    #[test]
    fn duplicates_keep_best_preference() {
        let got = plan(
            &records(&[(20, "mx.example."), (10, "MX.example"), (15, "b.example.")]),
            &mut never_swap,
        );
        assert_eq!(
            got,
            Plan::Exchanges(records(&[(10, "mx.example"), (15, "b.example")]))
        );
    }

    #[test]
    fn capped() {
        let many: Vec<(u16, String)> = (0..50).map(|i| (i, format!("mx{i}.example."))).collect();
        let Plan::Exchanges(got) = plan(&many, &mut never_swap) else {
            panic!("not a null MX");
        };
        assert_eq!(got.len(), MAX_MX_HOSTS);
        assert_eq!(got[0], (0, "mx0.example".to_string()));
    }

    #[test]
    fn random_below_n() {
        for n in 1..20 {
            assert!(system_random(n) < n);
        }
        assert_eq!(system_random(0), 0);
    }
}
