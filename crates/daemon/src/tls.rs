//! The TLS server side: the rustls configuration from `[smtpd] tls_cert`
//! and `tls_key` (PEM: the certificate chain, then a PKCS#8, PKCS#1 or
//! SEC1 key), TLS 1.2 and 1.3 with the ring provider, and how a session
//! names what it negotiated for logs and `Received:` lines.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server configuration, or why not (file and reason). Read before
/// dropping root if only root can read the key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: cannot read the certificate: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: cannot read the private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "{} and {}: the key does not fit the certificate or is unusable: {e}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// The protocol version ("TLSv1.3") and cipher suite
/// ("TLS13_AES_256_GCM_SHA384") of an established connection.
pub fn describe(conn: &rustls::ServerConnection) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map_or_else(|| "unknown".to_string(), |s| format!("{:?}", s.suite()));
    (version, cipher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_pair_and_explains_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, c.cert.pem()).expect("write");
        std::fs::write(&key, c.signing_key.serialize_pem()).expect("write");
        server_config(&cert, &key).expect("a good pair loads");

        let missing = dir.path().join("missing.pem");
        let e = server_config(&missing, &key).expect_err("missing");
        assert!(e.contains("missing.pem"), "{e}");
        let other = rcgen::generate_simple_self_signed(vec!["x".into()]).expect("cert");
        std::fs::write(&key, other.signing_key.serialize_pem()).expect("write");
        let e = server_config(&cert, &key).expect_err("mismatched");
        assert!(e.contains("does not fit"), "{e}");
        std::fs::write(&key, "not pem").expect("write");
        let e = server_config(&cert, &key).expect_err("garbage");
        assert!(e.contains("key.pem"), "{e}");
    }
}
