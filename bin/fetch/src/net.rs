//! Connections: TCP with deadlines, and TLS (rustls, ring) verified against
//! the system's roots as OpenSSL finds them (`SSL_CERT_FILE`,
//! `SSL_CERT_DIR`, through rustls-native-certs) plus any `--ca FILE`, or,
//! with `--insecure`, not verified at all (the handshake's signatures still
//! are).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::Error;

/// Connecting and the TLS handshake each have this long. Every later read
/// and write has [`IO_TIMEOUT`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The deadline of each read and write once connected: long enough for a
/// server to produce a large message, short enough that a dead link does
/// not hold a cron run for long (RFC 1939 §3 gives servers 10 minutes of
/// client silence; we give the server 5).
pub const IO_TIMEOUT: Duration = Duration::from_secs(300);

/// The TLS client configuration of a run.
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
}

impl Tls {
    /// Trusts the system's roots and the certificates of `ca` (PEM); with
    /// `insecure`, any certificate.
    pub fn new(ca: Option<&Path>, insecure: bool) -> Result<Tls, String> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(mxa_runner::tls::AnyCertificate(
                    provider,
                )))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert); // a malformed system certificate is skipped
            }
            if let Some(ca) = ca {
                let certs = CertificateDer::pem_file_iter(ca)
                    .map_err(|e| format!("{}: {e}", ca.display()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
                if certs.is_empty() {
                    return Err(format!("{}: no PEM certificate in it", ca.display()));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Tls {
            config: Arc::new(config),
        })
    }

    /// The handshake on `tcp` for `host`.
    pub async fn handshake(&self, tcp: TcpStream, host: &str) -> Result<Conn, Error> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| Error::Tls(format!("{host}: {e}")))?;
        let connector = TlsConnector::from(self.config.clone());
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| Error::Temporary("TLS handshake timed out".into()))?
            .map_err(
                |e| match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(r) => Error::Tls(r.to_string()),
                    None => Error::Temporary(format!("TLS handshake: {e}")),
                },
            )?;
        Ok(Conn::Tls(Box::new(tls)))
    }
}

/// Opens a TCP connection to `host:port`.
pub async fn connect(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), Error> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| Error::Temporary(format!("connecting to {host}:{port} timed out")))?
        .map_err(|e| Error::Temporary(format!("connecting to {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let peer = tcp
        .peer_addr()
        .map_err(|e| Error::Temporary(format!("{host}:{port}: {e}")))?;
    Ok((tcp, peer))
}

/// A connection, in clear or in TLS.
#[derive(Debug)]
pub enum Conn {
    /// No TLS (yet).
    Plain(TcpStream),
    /// TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// The TLS version and cipher suite, for `Received:` and logs.
    pub fn tls_info(&self) -> Option<String> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(t) => {
                let (_, c) = t.get_ref();
                let v = c
                    .protocol_version()
                    .map(|v| format!("{v:?}").replace('_', "."))
                    .unwrap_or_default();
                let s = c
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default();
                Some(format!("{v} {s}"))
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
