//! TLS for outgoing SMTP (rustls, ring). To MX hosts STARTTLS is
//! opportunistic and the certificate is not verified (DESIGN.md: until
//! MTA-STS/DANE land), but the handshake's signatures still are, so the
//! session is encrypted to whoever holds the key it showed. To a relayhost
//! the certificate is verified against the system's roots as OpenSSL finds
//! them (`SSL_CERT_FILE`, `SSL_CERT_DIR`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Client configurations, built once per pass. The verified one is built
/// on first use: loading the system's roots costs more than a whole
/// delivery, and only a relayhost needs them.
#[derive(Debug)]
pub struct Tls {
    provider: Arc<CryptoProvider>,
    /// For MX hosts: any certificate.
    pub opportunistic: Arc<ClientConfig>,
    verified: std::sync::OnceLock<Result<Arc<ClientConfig>, String>>,
}

impl Tls {
    /// Builds the opportunistic configuration.
    pub fn new() -> Result<Tls, String> {
        let provider = Arc::new(ring::default_provider());
        let opportunistic = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
            .with_no_client_auth();
        Ok(Tls {
            provider,
            opportunistic: Arc::new(opportunistic),
            verified: std::sync::OnceLock::new(),
        })
    }

    /// For a relayhost: verified against the system's roots.
    pub fn verified(&self) -> Result<Arc<ClientConfig>, String> {
        self.verified
            .get_or_init(|| {
                let mut roots = RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert); // a malformed system certificate is skipped
                }
                ClientConfig::builder_with_provider(self.provider.clone())
                    .with_safe_default_protocol_versions()
                    .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// Accepts any certificate, still checking the handshake signatures, so
/// the session is encrypted to whoever holds the key shown: opportunistic
/// STARTTLS here, `--insecure` in mxa-fetch.
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
