//! mxa-fetch-lib: the parts of mxa-fetch that do no network I/O.
//!
//! - [`pop3`]: a POP3 client as a state machine with no I/O ([`pop3::Client`]:
//!   commands in, bytes out; bytes in, [`pop3::Reply`] values out), for
//!   RFC 1939 (POP3), RFC 2449 (CAPA, PIPELINING), RFC 2595 (STLS) and
//!   RFC 5034 (AUTH PLAIN with an initial response).
//! - [`url`]: the `pop3://`, `pop3s://`, `imap://` and `imaps://` URLs of
//!   accounts ([`url::Url`]), with RFC 3986 percent-decoding of the user.
//! - [`state`]: what was fetched, per account, server and folder
//!   ([`state::Pop3State`], [`state::ImapState`]): a small text journal,
//!   appended with fdatasync after each delivery and compacted atomically
//!   through mxa-durable.
//!
//! IMAP itself is spoken by the binary through the async-imap crate.

pub mod pop3;
pub mod state;
pub mod url;

/// Standard base64 (RFC 4648 §4) of `data`, for AUTH PLAIN.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    // RFC 4648 §10 test vectors.
    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
