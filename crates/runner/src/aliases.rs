//! aliases(5): the local aliases file, expanded by the queue runner before
//! routing (DESIGN.md, "Local and remote delivery").
//!
//! Syntax, as Postfix's postalias and sendmail read it: `name: value, value`;
//! `#` comment lines and blank lines are skipped (they do not end a logical
//! line); a line starting with whitespace continues the previous one.
//! Names: `local` (any local domain), `local@domain` (that domain only) or
//! `@domain` (that domain's catch-all), matched case-insensitively. Values:
//! addresses (bare names take the domain of the address being expanded),
//! `|command` (unquoted it runs to the next comma) or `"|command, args"`,
//! `/file` (mbox) and `/dir/` (Maildir; the trailing `/` is kept in the
//! [`PathBuf`]), `:include:/absolute/path` (read at expansion time) and
//! `\name` (that user itself, not expanded further).
//!
//! Decisions:
//! - Lookup order: `local@domain`, `local`, then the same two for the part
//!   before the first delimiter (`bob` for `bob+lists`), then `@domain`.
//!   The extension is not propagated to the results (Postfix's
//!   `propagate_unmatched_extensions` left out).
//! - A catch-all applies to the recipient being expanded when no more
//!   specific entry does, existing users included (as Postfix's virtual
//!   aliases; [`Aliases::is_catch_all`] lets the runner prefer the user),
//!   but not to the addresses an expansion yields: `@d: admin` with
//!   `admin: bob` gives `bob@d`, not a loop back through the catch-all.
//! - `postmaster` (also `postmaster+ext`) is never taken by a catch-all: an
//!   explicit `postmaster` or `postmaster@domain` entry is used, otherwise
//!   [`Aliases::expand`] gives `None` and the runner delivers to
//!   `<mailroot>/<domain>/postmaster/`, so RFC 5321's postmaster stays local
//!   whatever a catch-all does.
//! - An address that its own entry (or an :include: of it) yields, as in
//!   `bob: bob, copy@x`, is delivered as is; reaching an address further up
//!   the chain is a loop, an error even when that address also delivers to
//!   itself (`bob: bob, carol` with `carol: bob`).
//! - Addresses are kept as written (domains lower-cased); duplicates are
//!   compared that way. Errors in a continued line name its first line.
//! - `:include:` files may not name commands or files (Postfix's default
//!   `allow_mail_to_commands` and `allow_mail_to_files` leave them out).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

const MAX_DEPTH: usize = 20;
const MAX_TARGETS: usize = 10_000;
const MAX_STEPS: usize = 100_000;
const MAX_LINE: usize = 1 << 20;
const MAX_FILE: u64 = 16 << 20;

/// One final destination of an expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address to deliver to (local or remote), fully qualified.
    Address(String),
    /// `|command` (run through the MDA path as a pipe; the runner decides how).
    Command(String),
    /// `/path` (an mbox) or `/path/` (a Maildir).
    File(PathBuf),
}

#[derive(Debug, Clone)]
enum Value {
    Address(String),
    Literal(String),
    Command(String),
    File(PathBuf),
    Include(PathBuf),
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    values: Vec<Value>,
}

/// A parsed aliases file.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    file: PathBuf,
    entries: HashMap<String, Entry>,
}

/// A syntax error (with its line), an unreadable file, or an expansion that
/// loops or grows too far (with the line of the entry where it happened).
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct AliasError {
    pub file: PathBuf,
    pub line: usize,
    pub msg: String,
}

fn err(file: &Path, line: usize, msg: impl Into<String>) -> AliasError {
    AliasError {
        file: file.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    let mut file = std::fs::File::open(path)?.take(MAX_FILE + 1);
    file.read_to_string(&mut text)?;
    match text.len() as u64 > MAX_FILE {
        true => Err(std::io::Error::other("file too large")),
        false => Ok(text),
    }
}

/// Calls `f` on each character with whether it stands outside double quotes
/// (a backslash inside quotes escapes the next character). Returns whether
/// the quotes are balanced.
fn scan(s: &str, mut f: impl FnMut(usize, char, bool)) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else {
            f(i, c, !quoted);
        }
    }
    !quoted
}

/// Splits at the last `@` outside quotes.
fn split_at_domain(a: &str) -> Option<(&str, &str)> {
    let mut at = None;
    scan(a, |i, c, bare| {
        if bare && c == '@' {
            at = Some(i);
        }
    });
    at.map(|i| (&a[..i], &a[i + 1..]))
}

fn qualify(a: &str, domain: &str) -> String {
    match split_at_domain(a) {
        Some((local, d)) => format!("{local}@{}", d.to_ascii_lowercase()),
        None => format!("{a}@{}", domain.to_ascii_lowercase()),
    }
}

fn is_local(domains: &[String], domain: &str) -> bool {
    domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

fn strip_include(s: &str) -> Option<&str> {
    s.get(..9)
        .filter(|p| p.eq_ignore_ascii_case(":include:"))
        .map(|_| &s[9..])
}

/// `"..."` without its quotes and escapes, when the quotes enclose it all.
fn unquote(tok: &str) -> Option<String> {
    let inner = tok.strip_prefix('"')?.strip_suffix('"')?;
    let (mut out, mut chars) = (String::new(), inner.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            _ => out.push(c),
        }
    }
    Some(out)
}

fn check_address(a: &str) -> Result<(), &'static str> {
    let mut space = false;
    scan(a, |_, c, bare| space |= bare && c.is_whitespace());
    if a.is_empty() {
        return Err("empty address");
    }
    if space {
        return Err("whitespace in an address (quote it)");
    }
    match split_at_domain(a) {
        Some(("", _)) => Err("address without a local part"),
        Some((_, "")) => Err("address without a domain"),
        _ => Ok(()),
    }
}

fn parse_value(tok: &str, file: &Path, line: usize) -> Result<Value, AliasError> {
    let bad = |m: &str| Err(err(file, line, format!("{m}: {tok:?}")));
    let unquoted = unquote(tok);
    let s = match &unquoted {
        Some(u) if u.starts_with(['|', '/', '\\']) || strip_include(u).is_some() => u,
        _ => tok,
    };
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return bad("control character in a value");
    }
    if let Some(cmd) = s.strip_prefix('|') {
        match cmd.trim() {
            "" => bad("empty command"),
            cmd => Ok(Value::Command(cmd.to_string())),
        }
    } else if let Some(path) = strip_include(s) {
        match path.trim() {
            p if p.starts_with('/') => Ok(Value::Include(PathBuf::from(p))),
            _ => bad("an :include: path must be absolute"),
        }
    } else if s.starts_with('/') {
        Ok(Value::File(PathBuf::from(s)))
    } else if let Some(name) = s.strip_prefix('\\') {
        check_address(name).map_or_else(bad, |()| Ok(Value::Literal(name.to_string())))
    } else {
        check_address(s).map_or_else(bad, |()| Ok(Value::Address(s.to_string())))
    }
}

/// The comma-separated values of one logical line (empty items are skipped).
fn parse_values(text: &str, file: &Path, line: usize) -> Result<Vec<Value>, AliasError> {
    if text.len() > MAX_LINE {
        return Err(err(file, line, format!("longer than {MAX_LINE} bytes")));
    }
    let mut commas = Vec::new();
    if !scan(text, |i, c, bare| {
        if bare && c == ',' {
            commas.push(i);
        }
    }) {
        return Err(err(file, line, "unterminated quote"));
    }
    let mut start = 0;
    let mut values = Vec::new();
    for end in commas.into_iter().chain([text.len()]) {
        let tok = text[start..end].trim();
        start = end + 1;
        if !tok.is_empty() {
            values.push(parse_value(tok, file, line)?);
        }
    }
    Ok(values)
}

fn parse_name(name: &str) -> Result<String, &'static str> {
    if name.is_empty() {
        return Err("empty alias name");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace or a control character in an alias name");
    }
    if name.rsplit_once('@').is_some_and(|(_, d)| d.is_empty()) {
        return Err("alias name without a domain after '@'");
    }
    Ok(name.to_lowercase())
}

impl Aliases {
    /// Reads an aliases(5) file. `:include:` files are read at expansion
    /// time (they may change), relative to nothing: they must be absolute.
    pub fn load(path: &Path) -> Result<Aliases, AliasError> {
        let text = read_bounded(path).map_err(|e| err(path, 0, format!("cannot read: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parses the text of an aliases file; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Aliases, AliasError> {
        let mut logical: Vec<(usize, String)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if raw.starts_with([' ', '\t']) {
                let Some((_, cur)) = logical.last_mut() else {
                    return Err(err(file, i + 1, "continuation of nothing"));
                };
                cur.push(' ');
                cur.push_str(trimmed);
            } else {
                logical.push((i + 1, raw.trim_end().to_string()));
            }
        }
        let mut entries: HashMap<String, Entry> = HashMap::new();
        for (line, text) in logical {
            let Some((name, rest)) = text.split_once(':') else {
                return Err(err(file, line, "missing ':' after the alias name"));
            };
            let name = parse_name(name.trim_end()).map_err(|m| err(file, line, m))?;
            let values = parse_values(rest, file, line)?;
            if values.is_empty() {
                return Err(err(file, line, format!("alias {name:?} has no values")));
            }
            if let Some(first) = entries.get(&name) {
                let msg = format!("duplicate alias {name:?} (first at line {})", first.line);
                return Err(err(file, line, msg));
            }
            entries.insert(name, Entry { line, values });
        }
        Ok(Aliases {
            file: file.to_path_buf(),
            entries,
        })
    }

    /// Expands `address` (a recipient in one of `local_domains`; the caller
    /// checks that) into its final targets, with `+` as the extension
    /// delimiter. None: no alias applies (deliver to the address itself).
    /// Some(targets): the alias's expansion, recursively, with loop
    /// protection, duplicates removed (first occurrence kept).
    pub fn expand(
        &self,
        address: &str,
        local_domains: &[String],
    ) -> Result<Option<Vec<Target>>, AliasError> {
        self.expand_with(address, local_domains, "+")
    }

    /// [`expand`](Self::expand) with the extension delimiters given (each
    /// character is one, as Postfix's `recipient_delimiter`; "" for none).
    /// An address without a domain takes the first local domain.
    pub fn expand_with(
        &self,
        address: &str,
        local_domains: &[String],
        delimiters: &str,
    ) -> Result<Option<Vec<Target>>, AliasError> {
        let addr = match (split_at_domain(address), local_domains.first()) {
            (Some(_), _) => qualify(address, ""),
            (None, Some(d)) => qualify(address, d),
            (None, None) => return Ok(None),
        };
        if !self.knows_with(&addr, local_domains, delimiters) {
            return Ok(None);
        }
        let mut x = Expansion {
            aliases: self,
            domains: local_domains,
            delimiters,
            stack: Vec::new(),
            done: HashSet::new(),
            seen: HashSet::new(),
            targets: Vec::new(),
            steps: 0,
        };
        x.address(addr, (&self.file, 0))?;
        Ok(Some(x.targets))
    }

    /// Whether an entry applies to `address` (for RCPT checks), with `+`.
    pub fn knows(&self, address: &str, local_domains: &[String]) -> bool {
        self.knows_with(address, local_domains, "+")
    }

    /// Whether only a catch-all applies to `address` (with `+`): the
    /// runner may deliver to an existing user instead of expanding.
    pub fn is_catch_all(&self, address: &str, local_domains: &[String]) -> bool {
        split_at_domain(address).is_some_and(|(local, domain)| {
            is_local(local_domains, domain)
                && self.lookup(local, domain, "+", false).is_none()
                && self.lookup(local, domain, "+", true).is_some()
        })
    }

    /// [`knows`](Self::knows) with the extension delimiters given.
    pub fn knows_with(&self, address: &str, domains: &[String], delimiters: &str) -> bool {
        split_at_domain(address).is_some_and(|(local, domain)| {
            is_local(domains, domain) && self.lookup(local, domain, delimiters, true).is_some()
        })
    }

    /// The entry for `local@domain`, and the address it matched as.
    fn lookup(
        &self,
        local: &str,
        domain: &str,
        delims: &str,
        all: bool,
    ) -> Option<(&Entry, String)> {
        let domain = domain.to_ascii_lowercase();
        let full = local.to_lowercase();
        let base = full
            .find(|c| delims.contains(c))
            .filter(|&i| i > 0)
            .map(|i| &full[..i]);
        for l in std::iter::once(full.as_str()).chain(base) {
            let q = format!("{l}@{domain}");
            if let Some(e) = self.entries.get(&q).or_else(|| self.entries.get(l)) {
                return Some((e, q));
            }
        }
        if !all || full == "postmaster" || base == Some("postmaster") {
            return None;
        }
        let entry = self.entries.get(&format!("@{domain}"))?;
        Some((entry, format!("{full}@{domain}")))
    }
}

type Loc<'p> = (&'p Path, usize);

struct Expansion<'a> {
    aliases: &'a Aliases,
    domains: &'a [String],
    delimiters: &'a str,
    /// Addresses and :include: files being expanded, each with the address
    /// its entry matched as (`bob@d` for `bob+x@d`).
    stack: Vec<(String, String)>,
    /// (address or :include:, domain) fully expanded already.
    done: HashSet<(String, String)>,
    seen: HashSet<(u8, String)>,
    targets: Vec<Target>,
    steps: usize,
}

impl Expansion<'_> {
    fn chain(&self) -> String {
        self.stack
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    fn push(&mut self, t: Target, at: Loc<'_>) -> Result<(), AliasError> {
        let key = match &t {
            Target::Address(a) => (0, a.clone()),
            Target::Command(c) => (1, c.clone()),
            Target::File(p) => (2, p.to_string_lossy().into_owned()),
        };
        if self.seen.insert(key) {
            if self.targets.len() >= MAX_TARGETS {
                let msg = format!("{} gives over {MAX_TARGETS} targets", self.chain());
                return Err(err(at.0, at.1, msg));
            }
            self.targets.push(t);
        }
        Ok(())
    }

    fn enter(&mut self, key: String, matched: String, at: Loc<'_>) -> Result<(), AliasError> {
        if self.stack.iter().any(|(k, m)| *k == key || *m == key) {
            let msg = format!("alias loop: {} -> {key}", self.chain());
            return Err(err(at.0, at.1, msg));
        }
        if self.stack.len() >= MAX_DEPTH {
            let msg = format!("nested deeper than {MAX_DEPTH}: {} -> {key}", self.chain());
            return Err(err(at.0, at.1, msg));
        }
        self.stack.push((key, matched));
        Ok(())
    }

    fn address(&mut self, addr: String, at: Loc<'_>) -> Result<(), AliasError> {
        let key = addr.to_lowercase();
        // The nearest address being expanded (an :include: is no address).
        let mut frames = self.stack.iter().rev();
        let owner = frames.find(|(k, _)| !k.starts_with(":include:"));
        let is_self = owner.is_some_and(|(k, m)| *k == key || *m == key);
        let Some((local, domain)) = split_at_domain(&addr).filter(|_| !is_self) else {
            return self.push(Target::Address(addr), at);
        };
        if !is_local(self.domains, domain) {
            return self.push(Target::Address(addr), at);
        }
        if self.done.contains(&(key.clone(), String::new())) {
            return Ok(());
        }
        let aliases = self.aliases;
        let top = self.stack.is_empty();
        let Some((entry, matched)) = aliases.lookup(local, domain, self.delimiters, top) else {
            return self.push(Target::Address(addr), at);
        };
        self.enter(key.clone(), matched, at)?;
        for v in &entry.values {
            self.value(v, domain, (&aliases.file, entry.line), false)?;
        }
        self.stack.pop();
        self.done.insert((key, String::new()));
        Ok(())
    }

    fn value(&mut self, v: &Value, domain: &str, at: Loc<'_>, inc: bool) -> Result<(), AliasError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            let msg = format!("expanding {} takes over {MAX_STEPS} steps", self.chain());
            return Err(err(at.0, at.1, msg));
        }
        match v {
            Value::Address(a) => self.address(qualify(a, domain), at),
            Value::Literal(a) => self.push(Target::Address(qualify(a, domain)), at),
            Value::Command(_) | Value::File(_) if inc => {
                Err(err(at.0, at.1, "no commands or files in :include: files"))
            }
            Value::Command(c) => self.push(Target::Command(c.clone()), at),
            Value::File(p) => self.push(Target::File(p.clone()), at),
            Value::Include(path) => self.include(path, domain, at),
        }
    }

    fn include(&mut self, path: &Path, domain: &str, at: Loc<'_>) -> Result<(), AliasError> {
        let key = format!(":include:{}", path.display());
        let done = (key.clone(), domain.to_string());
        if self.done.contains(&done) {
            return Ok(());
        }
        self.enter(key.clone(), key.clone(), at)?;
        let text = read_bounded(path).map_err(|e| err(at.0, at.1, format!("{key}: {e}")))?;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if !t.is_empty() && !t.starts_with('#') {
                for v in parse_values(t, path, i + 1)? {
                    self.value(&v, domain, (path, i + 1), true)?;
                }
            }
        }
        self.stack.pop();
        self.done.insert(done);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "example.org";

    fn domains() -> Vec<String> {
        vec![ORG.into(), "example.net".into()]
    }
    fn parse(text: &str) -> Aliases {
        Aliases::parse(text, Path::new("aliases")).expect("parses")
    }
    /// The expansion as one line: "-" for None, else the targets joined.
    fn show(a: &Aliases, address: &str, delimiters: &str) -> String {
        let Some(targets) = a
            .expand_with(address, &domains(), delimiters)
            .expect(address)
        else {
            return "-".into();
        };
        let show = |t: &Target| match t {
            Target::Address(a) => a.clone(),
            Target::Command(c) => format!("|{c}"),
            Target::File(p) => p.display().to_string(),
        };
        targets.iter().map(show).collect::<Vec<_>>().join(", ")
    }
    fn check(a: &Aliases, table: &[(&str, &str)]) {
        for (address, want) in table {
            assert_eq!(show(a, address, "+"), *want, "{address}");
        }
    }
    fn fails(a: &Aliases, address: &str) -> AliasError {
        a.expand(address, &domains()).expect_err(address)
    }

    #[test]
    #[rustfmt::skip]
    fn values() {
        let table = [
            // aliases(5): "name: value1, value2, ..."; a bare name is local.
            ("x: bob", "bob@example.org"),
            ("x: bob@remote.test, Carol@EXAMPLE.NET", "bob@remote.test, Carol@example.net"),
            // "|command": quoted when it holds spaces or commas; unquoted, it
            // runs to the next comma.
            ("x: \"|/usr/bin/vacation -a \\\"b c\\\", x\"", "|/usr/bin/vacation -a \"b c\", x"),
            ("x: |/usr/bin/procmail -a list, bob", "|/usr/bin/procmail -a list, bob@example.org"),
            // "/file/name" (mbox) and "/file/name/" (Maildir).
            ("x: /var/mail/x.mbox, /var/mail/x/, \"/m/with space\"", "/var/mail/x.mbox, /var/mail/x/, /m/with space"),
            // "\name": that user itself, not expanded further.
            ("x: \\x, \\bob", "x@example.org, bob@example.org"),
            ("x: \"john doe\"@remote.test", "\"john doe\"@remote.test"),
            // "a line that starts with whitespace continues a logical line";
            // comment and blank lines do not end it; duplicates go.
            ("x: a,\n  b,\n# note\n\n\tc,", "a@example.org, b@example.org, c@example.org"),
            ("# top\n\nx: a, b, a, A@Example.Org", "a@example.org, b@example.org, A@example.org"),
        ];
        for (text, want) in table {
            assert_eq!(show(&parse(text), "x@example.org", "+"), want, "{text}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn precedence() {
        // local@domain, then local (any local domain), then @domain.
        let a = parse("bob@example.org: one@x.test\nbob: two\n@example.org: three@x.test\nBig: 4");
        check(&a, &[
            ("bob@example.org", "one@x.test"),
            ("BOB@Example.ORG", "one@x.test"),
            ("bob@example.net", "two@example.net"),
            ("big@example.net", "4@example.net"),
            ("carol@example.org", "three@x.test"),
            ("carol@example.net", "-"),
            ("bob@remote.test", "-"),
            ("bob", "one@x.test"),
        ]);
        assert!(a.knows("carol@example.org", &domains()));
        assert!(!a.knows("carol@example.net", &domains()));
        assert!(a.is_catch_all("carol@example.org", &domains()));
        assert!(!a.is_catch_all("bob@example.org", &domains()));
        assert!(!a.is_catch_all("carol@example.net", &domains()));
    }

    #[test]
    #[rustfmt::skip]
    fn postmaster() {
        // RFC 5321 4.5.1: a catch-all never takes postmaster (the runner
        // delivers it to <mailroot>/<domain>/postmaster/); an explicit entry
        // wins.
        check(&parse("@example.org: catch\n@example.net: catch"), &[
            ("postmaster@example.org", "-"),
            ("PostMaster@example.net", "-"),
            ("postmaster+x@example.org", "-"),
        ]);
        check(&parse("@example.org: catch\npostmaster: root, hm@x.test"), &[
            ("postmaster@example.org", "root@example.org, hm@x.test"),
            ("postmaster", "root@example.org, hm@x.test"),
            ("postmaster@example.net", "root@example.net, hm@x.test"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn extensions() {
        // Postfix's recipient_delimiter: bob+ext falls back to bob; the
        // extension is not propagated.
        let a = parse("bob: robert\nbob+lists: archive\n@example.net: catch");
        let table = [
            ("bob+lists@example.org", "+", "archive@example.org"),
            ("bob+other@example.org", "+", "robert@example.org"),
            ("bob-other@example.org", "+-", "robert@example.org"),
            ("bob-other@example.org", "+", "-"),
            ("bob+other@example.org", "", "-"),
            ("+bob@example.org", "+", "-"),
            ("bob+x@example.net", "+", "robert@example.net"),
            ("carol+x@example.net", "+", "catch@example.net"),
        ];
        for (address, delimiters, want) in table {
            assert_eq!(show(&a, address, delimiters), want, "{address} {delimiters}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn recursion_and_self() {
        // local(8): an alias that names itself delivers to itself.
        let a = parse("a: b, r@x.test\nb: c, d@example.net, \\a\nc: \\c, r@x.test\n\
                       bob: bob, archive@x.test\n@example.net: all\nlist: bob, list");
        check(&a, &[
            // What an expansion yields does not go through the catch-all.
            ("a@example.org", "c@example.org, r@x.test, d@example.net, a@example.org"),
            ("bob@example.org", "bob@example.org, archive@x.test"),
            ("list@example.org", "bob@example.org, archive@x.test, list@example.org"),
            ("anyone@example.net", "all@example.net"),
        ]);
        check(&parse("@example.org: admin\nadmin: bob, carol@example.net\n@example.net: x"), &[
            ("anyone@example.org", "bob@example.org, carol@example.net"),
        ]);
    }

    #[test]
    fn loops_and_bounds() {
        let e = fails(&parse("a: b\nb: c\nc: a"), "a@example.org");
        let chain = "a@example.org -> b@example.org -> c@example.org -> a@example.org";
        assert_eq!((e.line, e.msg), (3, format!("alias loop: {chain}")));
        let deep: String = (0..30).map(|i| format!("n{i}: n{}\n", i + 1)).collect();
        let e = fails(&parse(&deep), "n0@example.org");
        assert!(e.msg.contains("nested deeper than 20"), "{e}");
        let wide: Vec<String> = (0..=MAX_TARGETS).map(|i| format!("u{i}@x.test")).collect();
        let e = fails(
            &parse(&format!("big: {}", wide.join(","))),
            "big@example.org",
        );
        assert!(e.msg.contains("over 10000 targets"), "{e}");
    }

    #[test]
    fn include() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("list");
        let write = |text: &str| std::fs::write(&list, text).expect("write");
        write("one, two\n# comment\n\nthree@x.test\nowner\n");
        let a = parse(&format!(
            "staff: :include:{}, owner\nowner: \\owner, boss@x.test",
            list.display()
        ));
        let want = "one@example.net, two@example.net, three@x.test, owner@example.net, boss@x.test";
        assert_eq!(show(&a, "staff@example.net", "+"), want);
        // Read at expansion time: changes show, a missing file is an error.
        write("four\n");
        let want = "four@example.org, owner@example.org, boss@x.test";
        assert_eq!(show(&a, "staff@example.org", "+"), want);
        std::fs::remove_file(&list).expect("remove");
        let e = fails(&a, "staff@example.org");
        assert_eq!((e.file.as_path(), e.line), (Path::new("aliases"), 1), "{e}");
        // Commands and files are refused in :include: files (Postfix's defaults).
        write("ok\n|/bin/sh\n");
        let e = fails(&a, "staff@example.org");
        assert_eq!((e.file.as_path(), e.line), (list.as_path(), 2), "{e}");
        // A file including itself loops.
        write(&format!(":include:{}\n", list.display()));
        assert!(fails(&a, "staff@example.org").msg.contains("alias loop"));
    }

    #[test]
    #[rustfmt::skip]
    fn errors() {
        let table = [
            ("a b: c", 1, "whitespace or a control character"),
            ("ok: x\n\nbad\u{1}name: y", 3, "control"),
            ("a: b\n# x\nA: c", 3, "duplicate alias \"a\" (first at line 1)"),
            ("  cont: x", 1, "continuation"),
            ("ok: x\nnocolon", 2, "missing ':'"),
            ("a:\n# x\n", 1, "no values"),
            ("a: \"|unterminated", 1, "unterminated quote"),
            ("a: b,\n  :include:relative", 1, "must be absolute"),
            ("a: b c", 1, "whitespace in an address"),
            ("a: |", 1, "empty command"),
            ("x@: y", 1, "without a domain"),
            ("a: @example.org", 1, "without a local part"),
            (": b", 1, "empty alias name"),
        ];
        for (text, line, msg) in table {
            let e = Aliases::parse(text, Path::new("/etc/mxa/aliases")).expect_err(text);
            assert!(e.line == line && e.msg.contains(msg), "{text}: {e}");
        }
        let e = Aliases::parse("a b: c", Path::new("/etc/mxa/aliases")).expect_err("fails");
        assert!(e.to_string().starts_with("/etc/mxa/aliases:1: "), "{e}");
    }

    #[test]
    fn load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("aliases");
        std::fs::write(&path, "root: admin@x.test\n").expect("write");
        let a = Aliases::load(&path).expect("loads");
        assert_eq!(show(&a, "root@example.org", "+"), "admin@x.test");
        assert!(Aliases::load(&dir.path().join("missing")).is_err());
    }
}
