//! `[[fetch]]` tables, one per account of mxa-fetch. In keys, `fetch[1]`
//! is the first table of the file.

use serde::Deserialize;
use toml::Spanned;

use super::ctx::Ctx;
use super::{L, V, addr};
use crate::{ConfigError, Fetch, FetchTarget};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFetch {
    name: Option<V>,
    url: Option<V>,
    password_command: Option<V>,
    mda: Option<V>,
    maildir: Option<V>,
    queue_to: Option<V>,
    keep: Option<V>,
    folders: Option<L>,
    idle: Option<V>,
    move_to: Option<V>,
}

/// Checks an account name: it names a folder of fetch state, so letters,
/// digits, `.`, `_` and `-`, not starting with `.`.
fn check_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "expected a name such as \"old-provider\" (letters, digits, ., _ and -, not starting with .), found {s:?}"
        ))
    }
}

/// All `[[fetch]]` tables.
pub(crate) fn tables(cx: &Ctx<'_>, raw: &[Spanned<RawFetch>]) -> Result<Vec<Fetch>, ConfigError> {
    let mut out: Vec<Fetch> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let f = table(cx, t, i + 1)?;
        if let Some(first) = out.iter().position(|o| o.name == f.name) {
            let key = format!("fetch[{}].name", i + 1);
            let at = t.get_ref().name.as_ref().map_or(t.span(), |v| v.span());
            let msg = format!(
                "the name {:?} is already that of fetch[{}]",
                f.name,
                first + 1
            );
            return Err(cx.err(&Spanned::new(at, ()), &key, msg));
        }
        out.push(f);
    }
    Ok(out)
}

/// One table; `n` counts from 1.
fn table(cx: &Ctx<'_>, t: &Spanned<RawFetch>, n: usize) -> Result<Fetch, ConfigError> {
    let r = t.get_ref();
    let key = |k: &str| format!("fetch[{n}].{k}");
    let missing = |k: &str, what: &str| {
        cx.err(
            t,
            &key(k),
            format!("missing: every [[fetch]] table needs {k} ({what})"),
        )
    };
    let name = match &r.name {
        Some(v) => cx.check(v, &key("name"), check_name)?,
        None => return Err(missing("name", "a unique name such as \"old-provider\"")),
    };
    let (url, imap) = match &r.url {
        Some(v) => {
            let u = cx.check(v, &key("url"), |s| {
                addr::check_fetch_url(s).map(|u| (s.to_string(), u))
            })?;
            (u.0, u.1.imap)
        }
        None => {
            return Err(missing(
                "url",
                "such as \"imaps://me@imap.example.net/INBOX\"",
            ));
        }
    };
    let password_command = match &r.password_command {
        Some(v) => Some(cx.nonempty(
            v,
            &key("password_command"),
            "a command such as \"pass show mail\"",
        )?),
        None => None,
    };
    let mut target: Option<(FetchTarget, &'static str)> = None;
    for (k, v) in [
        ("mda", &r.mda),
        ("maildir", &r.maildir),
        ("queue_to", &r.queue_to),
    ] {
        let Some(v) = v else { continue };
        if let Some((_, first)) = &target {
            let msg = format!(
                "give only one of mda, maildir and queue_to (this table has {first} and {k})"
            );
            return Err(cx.err(v, &key(k), msg));
        }
        let t = match k {
            "mda" => {
                FetchTarget::Mda(cx.nonempty(v, &key(k), "a command such as \"mxa-deliver\"")?)
            }
            "maildir" => FetchTarget::Maildir(cx.folder(v, &key(k))?),
            _ => FetchTarget::QueueTo(cx.check(v, &key(k), |s| {
                crate::users::check_address(s).map(|()| s.to_string())
            })?),
        };
        target = Some((t, k));
    }
    let keep = match &r.keep {
        Some(v) => cx.boolean(v, &key("keep"))?,
        None => false,
    };
    let folders = match &r.folders {
        Some(l) if !imap && !l.get_ref().is_empty() => {
            return Err(cx.err(
                l,
                &key("folders"),
                "folders are IMAP only, and the url is pop3".into(),
            ));
        }
        Some(l) => cx.strings(l, &key("folders"))?,
        None => Vec::new(),
    };
    let idle = match &r.idle {
        Some(v) => {
            let idle = cx.boolean(v, &key("idle"))?;
            if idle && !imap {
                return Err(cx.err(
                    v,
                    &key("idle"),
                    "IDLE is IMAP only, and the url is pop3".into(),
                ));
            }
            idle
        }
        None => false,
    };
    let move_to = match &r.move_to {
        Some(v) => {
            let folder = cx.nonempty(v, &key("move_to"), "an IMAP folder such as \"Archive\"")?;
            if !imap {
                let msg = "move_to is IMAP only, and the url is pop3".into();
                return Err(cx.err(v, &key("move_to"), msg));
            }
            if keep {
                let msg =
                    "move_to and keep = true exclude each other: moved messages leave the folder"
                        .into();
                return Err(cx.err(v, &key("move_to"), msg));
            }
            Some(folder)
        }
        None => None,
    };
    Ok(Fetch {
        name,
        url,
        password_command,
        target: target.map_or_else(|| FetchTarget::Mda("mxa-deliver".into()), |(t, _)| t),
        keep,
        folders,
        idle,
        move_to,
    })
}
