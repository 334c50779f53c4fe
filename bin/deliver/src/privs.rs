//! Running as root, mxa-deliver becomes the mailbox owner before it touches
//! any file of the mailbox: the system account's user, or the owner of the
//! Maildir (or, when it does not exist yet, of its nearest existing parent,
//! such as `<mailroot>/<domain>`).

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Uid, User, geteuid, initgroups, setgid, setgroups, setuid};

use crate::target::Mailbox;
use crate::{Failure, exit};

/// Drops root for the mailbox owner; returns the uid we run as.
pub fn become_owner(mailbox: &Mailbox) -> Result<u32, Failure> {
    let me = geteuid();
    if !me.is_root() {
        return Ok(me.as_raw());
    }
    let (uid, gid) = match &mailbox.account {
        Some(a) => (a.uid, a.gid),
        None => owner_of(&mailbox.maildir)?,
    };
    if uid.is_root() {
        return Ok(0); // a root-owned mailbox is the administrator's choice
    }
    let fail = |what: &str, e: nix::Error| {
        Failure::new(
            exit::TEMPFAIL,
            format!("cannot become uid {uid}: {what}: {e}"),
        )
    };
    let name = User::from_uid(uid)
        .ok()
        .flatten()
        .and_then(|u| CString::new(u.name).ok());
    match name {
        Some(n) => initgroups(&n, gid).map_err(|e| fail("initgroups", e))?,
        None => setgroups(&[gid]).map_err(|e| fail("setgroups", e))?,
    }
    setgid(gid).map_err(|e| fail("setgid", e))?;
    setuid(uid).map_err(|e| fail("setuid", e))?;
    Ok(uid.as_raw())
}

/// The owner of `path`, or of its nearest existing parent.
fn owner_of(path: &Path) -> Result<(Uid, Gid), Failure> {
    let mut p = Some(path);
    while let Some(cur) = p {
        if let Ok(m) = std::fs::metadata(cur) {
            return Ok((Uid::from_raw(m.uid()), Gid::from_raw(m.gid())));
        }
        p = cur.parent();
    }
    Err(Failure::new(
        exit::CANTCREAT,
        format!("{}: no existing folder above it", path.display()),
    ))
}
