//! The users file: one account a line, `address:hash[:maildir[:home]]`.

use std::path::{Path, PathBuf};

use crate::{ConfigError, UserEntry, Users};

/// The hash prefixes accepted, crypt(3)-style.
const HASH_PREFIXES: &[&str] = &[
    "$argon2id$",
    "$argon2i$",
    "$6$",
    "$5$",
    "$2y$",
    "$2b$",
    "$2a$",
];

const HASH_EXPECTED: &str = "expected a crypt(3)-style hash ($argon2id$, $argon2i$, $6$, $5$, \
     $2y$, $2b$ or $2a$, as mkpasswd or openssl passwd -6 write it), or * or ! for a locked account";

/// Whether `hash` looks like a crypt(3) hash, or locks the account.
fn valid_hash(hash: &str) -> bool {
    if hash == "*" || hash == "!" {
        return true;
    }
    // `!` in front of a hash locks it, as usermod -L does in /etc/shadow.
    let h = hash.strip_prefix('!').unwrap_or(hash);
    !h.chars().any(|c| c.is_whitespace() || c.is_control())
        && HASH_PREFIXES
            .iter()
            .any(|p| h.len() > p.len() && h.starts_with(p))
}

/// Checks an address: one `@`, non-empty local part and domain, no blanks
/// or control characters. `Err` says what is wrong.
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "address {address:?} contains a blank or a control character"
        ));
    }
    match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(format!(
            "expected an address such as \"me@example.org\" (one @, a local part and a domain), found {address:?}"
        )),
    }
}

/// Splits an address at its last `@`.
fn split(address: &str) -> Option<(&str, &str)> {
    address.rsplit_once('@')
}

/// Same mailbox: local part exact, domain case-insensitive.
fn same_address(a: &str, b: &str) -> bool {
    match (split(a), split(b)) {
        (Some((la, da)), Some((lb, db))) => {
            la == lb && (da.eq_ignore_ascii_case(db) || da.to_lowercase() == db.to_lowercase())
        }
        _ => false,
    }
}

/// Makes `p` absolute against `dir`.
fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// The folder that relative paths in `file` are relative to.
pub(crate) fn folder_of(file: &Path) -> PathBuf {
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    abs.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

impl UserEntry {
    /// Whether the account is locked (hash `*`, `!` or `!…`): no login.
    pub fn locked(&self) -> bool {
        self.hash.starts_with('!') || self.hash == "*"
    }
}

impl Users {
    /// Reads and checks the users file `path`.
    pub fn load(path: &Path) -> Result<Users, ConfigError> {
        let text = std::fs::read(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: "users".into(),
            msg: crate::parse::io_msg(&e),
        })?;
        let text = String::from_utf8(text).map_err(|e| {
            let line = text_line(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
            ConfigError {
                file: path.to_path_buf(),
                line,
                key: "users".into(),
                msg: "not UTF-8 text".into(),
            }
        })?;
        Users::parse(&text, path)
    }

    /// Parses the text of a users file read from `file` (relative maildir
    /// and home paths resolve against `file`'s folder).
    pub fn parse(text: &str, file: &Path) -> Result<Users, ConfigError> {
        let dir = folder_of(file);
        let mut entries: Vec<(usize, UserEntry)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |key: String, msg: String| ConfigError {
                file: file.to_path_buf(),
                line,
                key,
                msg,
            };
            let Some(content) = strip_comment(raw) else {
                continue;
            };
            let fields: Vec<&str> = content.split(':').collect();
            let address = fields[0];
            if fields.len() < 2 {
                return Err(err(
                    "users".into(),
                    format!("expected address:hash[:maildir[:home]], found {content:?}"),
                ));
            }
            check_address(address).map_err(|m| err("users".into(), m))?;
            let key = format!("users: {address}");
            if fields.len() > 4 {
                return Err(err(
                    key,
                    "expected address:hash[:maildir[:home]], found more than 4 fields".into(),
                ));
            }
            let hash = fields[1];
            if !valid_hash(hash) {
                return Err(err(
                    key,
                    format!("{HASH_EXPECTED}, found {:?}", shorten(hash)),
                ));
            }
            let path_field = |n: usize| {
                fields
                    .get(n)
                    .filter(|s| !s.is_empty())
                    .map(|s| resolve(&dir, s))
            };
            let entry = UserEntry {
                address: address.to_string(),
                hash: hash.to_string(),
                maildir: path_field(2),
                home: path_field(3),
            };
            if let Some((first, _)) = entries
                .iter()
                .find(|(_, e)| same_address(&e.address, address))
            {
                return Err(err(key, format!("listed twice (first on line {first})")));
            }
            entries.push((line, entry));
        }
        Ok(Users {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
        })
    }

    /// The entry of `address`: the domain compares case-insensitively, the
    /// local part exactly.
    pub fn find(&self, address: &str) -> Option<&UserEntry> {
        self.entries
            .iter()
            .find(|e| same_address(&e.address, address))
    }
}

/// The 1-based line where `prefix` (the bytes before some point) ends.
fn text_line(prefix: &[u8]) -> usize {
    prefix.iter().filter(|&&b| b == b'\n').count() + 1
}

/// The entry part of a line, without its comment and surrounding blanks;
/// `None` for a blank or comment line. A `#` starts a comment at the start
/// of the line or after a blank only.
fn strip_comment(raw: &str) -> Option<&str> {
    let cut = raw
        .char_indices()
        .find(|&(i, c)| c == '#' && raw[..i].chars().next_back().is_none_or(char::is_whitespace))
        .map_or(raw.len(), |(i, _)| i);
    let s = raw[..cut].trim();
    (!s.is_empty()).then_some(s)
}

/// A hash is not echoed whole in messages: its start says enough.
fn shorten(hash: &str) -> String {
    if hash.chars().count() > 12 {
        let head: String = hash.chars().take(12).collect();
        format!("{head}…")
    } else {
        hash.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H6: &str = "$6$saltsalt$0123456789abcdefABCDEF./";
    const HA: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

    fn parse(text: &str) -> Result<Users, ConfigError> {
        Users::parse(text, Path::new("/etc/mxa/users"))
    }

    #[test]
    fn good_lines() {
        let text = format!(
            "# accounts\n\
             \n\
             me@example.org:{H6}\n\
             \tyou@Example.org:{HA}:  # trailing comment\n\
             box@example.org:{H6}:/srv/mail/box:/home/box\n\
             rel@example.org:$2y$10$abcdefghijklmnopqrstuv:maildirs/rel:homes/rel\n\
             locked@example.org:*\n\
             bang@example.org:!\n\
             old@example.org:!{H6}\n\
             x@example.net:$5$r$h::/home/x\n\
             y@example.net:$2b$05$x\n\
             z@example.net:$2a$05$x\n\
             w@example.net:$argon2i$v=19$x\n"
        );
        let u = parse(&text).expect("parses");
        assert_eq!(u.entries.len(), 11);
        let me = u.find("me@example.org").expect("me");
        assert_eq!(
            (me.hash.as_str(), me.maildir.as_ref(), me.home.as_ref()),
            (H6, None, None)
        );
        let you = u.find("you@example.org").expect("domain case-insensitive");
        assert_eq!(you.address, "you@Example.org");
        assert_eq!(you.maildir, None);
        let b = u.find("box@EXAMPLE.ORG").expect("box");
        assert_eq!(b.maildir.as_deref(), Some(Path::new("/srv/mail/box")));
        assert_eq!(b.home.as_deref(), Some(Path::new("/home/box")));
        let r = u.find("rel@example.org").expect("rel");
        assert_eq!(
            r.maildir.as_deref(),
            Some(Path::new("/etc/mxa/maildirs/rel"))
        );
        assert_eq!(r.home.as_deref(), Some(Path::new("/etc/mxa/homes/rel")));
        let x = u.find("x@example.net").expect("x");
        assert_eq!(
            (x.maildir.as_ref(), x.home.as_deref()),
            (None, Some(Path::new("/home/x")))
        );
        assert!(u.find("ME@example.org").is_none(), "local part is exact");
        assert!(u.find("me@example.net").is_none());
        assert!(u.find("me").is_none());
        for (a, locked) in [
            ("locked", true),
            ("bang", true),
            ("old", true),
            ("me", false),
        ] {
            let e = u.find(&format!("{a}@example.org")).expect(a);
            assert_eq!(e.locked(), locked, "{a}");
        }
    }

    #[test]
    fn hash_may_hold_hash_sign_after_no_blank() {
        // `#` is not a comment unless after a blank.
        let u = parse("a#b@example.org:$6$s#x$h\n").expect("parses");
        assert_eq!(u.entries[0].address, "a#b@example.org");
        assert_eq!(u.entries[0].hash, "$6$s#x$h");
    }

    #[test]
    fn bad_lines() {
        let cases: &[(&str, usize, &str, &str)] = &[
            ("# c\nnocolon\n", 2, "users", "expected address:hash"),
            ("me@example.org\n", 1, "users", "expected address:hash"),
            ("\n\nme:$6$s$h\n", 3, "users", "expected an address"),
            ("@example.org:$6$s$h\n", 1, "users", "expected an address"),
            ("me@:$6$s$h\n", 1, "users", "expected an address"),
            (
                "a@b@example.org:$6$s$h\n",
                1,
                "users",
                "expected an address",
            ),
            ("m e@example.org:$6$s$h\n", 1, "users", "blank"),
            (
                "me@example.org:secret\n",
                1,
                "users: me@example.org",
                "expected a crypt(3)-style hash",
            ),
            (
                "me@example.org:\n",
                1,
                "users: me@example.org",
                "expected a crypt(3)-style hash",
            ),
            (
                "me@example.org:$1$s$h\n",
                1,
                "users: me@example.org",
                "found \"$1$s$h\"",
            ),
            (
                "me@example.org:$6$\n",
                1,
                "users: me@example.org",
                "crypt(3)",
            ),
            (
                "me@example.org:$6$s$h:/m:/h:x\n",
                1,
                "users: me@example.org",
                "more than 4 fields",
            ),
            (
                "me@example.org:$6$s$h\nme@EXAMPLE.org:$6$s$h\n",
                2,
                "users: me@EXAMPLE.org",
                "listed twice (first on line 1)",
            ),
        ];
        for (text, line, key, msg) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.file, Path::new("/etc/mxa/users"), "{text:?}");
            assert_eq!((e.line, e.key.as_str()), (*line, *key), "{text:?}: {e}");
            assert!(e.msg.contains(msg), "{text:?}: {e}");
        }
        // A long plain-text password is not echoed whole.
        let e = parse("me@example.org:correct-horse-battery-staple\n").expect_err("plain");
        assert!(!e.msg.contains("staple"), "{e}");
    }

    #[test]
    fn load_from_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("users");
        std::fs::write(&p, "me@example.org:$6$s$h:Maildir\n").expect("write");
        let u = Users::load(&p).expect("load");
        assert_eq!(u.entries[0].maildir, Some(dir.path().join("Maildir")));
        let missing = dir.path().join("nope");
        let e = Users::load(&missing).expect_err("missing");
        assert_eq!(
            (e.line, e.key.as_str(), e.msg.as_str()),
            (0, "users", "no such file")
        );
        std::fs::write(&p, b"me@example.org:$6$s$h\n\xff\n").expect("write");
        let e = Users::load(&p).expect_err("binary");
        assert_eq!((e.line, e.msg.as_str()), (2, "not UTF-8 text"));
        assert_eq!(
            e.to_string(),
            format!("{}:2: users: not UTF-8 text", p.display())
        );
    }
}
