//! TLS for the checks (rustls): the client a check connects with, the
//! certificate chain it was shown, and the TLS check itself (any TLS
//! port: HTTPS, LDAPS, SMTPS, IMAPS…).
//!
//! The verifier records the chain the server sent and what verification
//! said, so a check can name an expired or untrusted certificate (a
//! plain rustls client only says the handshake failed). Sessions are
//! never resumed: each check makes a full handshake and sees the
//! certificate, as blackbox_exporter does.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{connect, Progress};
use crate::inventory::checks::{TlsCheck, TlsClient};
use crate::model::check::quote;
use crate::model::CheckProblem;

/// Why a check's TLS client cannot be built (a bad CA bundle or client
/// certificate). Names the setting, never a key's content.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("ca_file: {0}")]
    Ca(String),
    #[error("client_cert/client_key: {0}")]
    Client(String),
}

/// The certificate of a chain that expires first.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// Its subject's common name, or the whole subject.
    pub subject: String,
    pub not_after: DateTime<Utc>,
}

/// What the verifier saw in the last handshake.
#[derive(Debug, Default)]
struct Seen {
    chain: Vec<CertificateDer<'static>>,
    error: Option<rustls::Error>,
}

/// Verifies as rustls' WebPKI verifier does (or accepts anything, when
/// told to), and records the chain and the verdict.
#[derive(Debug)]
struct Recording {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Seen>,
}

impl Recording {
    fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = match &self.inner {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Ok(ServerCertVerified::assertion()),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        seen.error = result.as_ref().err().cloned();
        result
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The system's CAs, read once for every check that trusts them.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    "no system CA certificates found: HTTPS and TLS checks without ca_file will fail verification"
                );
            }
            Arc::new(store)
        })
        .clone()
}

/// ring's provider with AES-128-GCM-SHA256 offered first: the servers'
/// common choice, and a cheaper key schedule than SHA-384's.
fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

/// A check's TLS client: its config and the verifier that records.
pub struct Client {
    config: Arc<rustls::ClientConfig>,
    recording: Arc<Recording>,
    server_name: Option<String>,
}

impl Client {
    /// `http`: offer ALPN `http/1.1` (the HTTP check speaks it).
    pub fn new(s: &TlsClient, http: bool) -> Result<Self, TlsSetupError> {
        let provider = provider();
        let roots = match &s.ca_pem {
            Some(pem) => {
                let mut store = RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(pem) {
                    let c = c.map_err(|e| TlsSetupError::Ca(e.to_string()))?;
                    store.add(c).map_err(|e| TlsSetupError::Ca(e.to_string()))?;
                }
                if store.is_empty() {
                    return Err(TlsSetupError::Ca("no PEM certificate in the file".into()));
                }
                Arc::new(store)
            }
            None => system_roots(),
        };
        let inner = if s.insecure_skip_verify {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| TlsSetupError::Ca(e.to_string()))?,
            )
        };
        let recording = Arc::new(Recording {
            inner,
            provider: provider.clone(),
            seen: Mutex::new(Seen::default()),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Ca(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(recording.clone());
        let mut config = match (&s.client_cert_pem, &s.client_key_pem) {
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<_, _>>()
                    .map_err(|e| TlsSetupError::Client(format!("certificate: {e}")))?;
                // Never the key's text in an error.
                let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
                    .map_err(|_| TlsSetupError::Client("no usable PEM private key".into()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsSetupError::Client(e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.resumption = Resumption::disabled();
        if http {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Ok(Client {
            config: Arc::new(config),
            recording,
            server_name: s.server_name.clone(),
        })
    }

    /// The TLS handshake over `stream`, timed as the `tls` phase. `name`
    /// is verified and sent as SNI unless the client has its own.
    /// Records the chain's first expiry and any problem with it.
    pub(super) async fn handshake<S>(
        &self,
        p: &mut Progress,
        stream: S,
        name: &str,
        warning: Duration,
    ) -> Option<tokio_rustls::client::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = self.server_name.as_deref().unwrap_or(name);
        let server_name = match ServerName::try_from(name.to_string()) {
            Ok(n) => n,
            Err(_) => {
                p.problem(CheckProblem::Tls {
                    error: format!("{} is not a valid server name", quote(name)),
                });
                return None;
            }
        };
        p.begin("tls");
        self.recording.take();
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let result = connector.connect(server_name, stream).await;
        p.end();
        let seen = self.recording.take();
        let cert = first_expiry(&seen.chain);
        p.cert = cert.clone();
        match (result, seen.error, cert) {
            (_, Some(e), cert) => {
                p.problem(cert_problem(&e, cert));
                None
            }
            (Err(e), None, _) => {
                p.problem(CheckProblem::Tls {
                    error: quote(&e.to_string()),
                });
                None
            }
            (Ok(s), None, cert) => {
                if let Some(c) = cert {
                    grade_expiry(p, &c, warning);
                }
                Some(s)
            }
        }
    }
}

/// What a failed verification means, named by the certificate.
fn cert_problem(e: &rustls::Error, cert: Option<CertInfo>) -> CheckProblem {
    let subject = cert
        .as_ref()
        .map_or_else(|| "(unreadable)".to_string(), |c| c.subject.clone());
    match (e, cert) {
        (
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ),
            Some(c),
        ) => CheckProblem::CertExpired {
            subject,
            not_after: c.not_after,
        },
        (rustls::Error::InvalidCertificate(ce), _) => CheckProblem::CertInvalid {
            subject,
            error: quote(&format!("{ce:?}")),
        },
        (other, _) => CheckProblem::Tls {
            error: quote(&other.to_string()),
        },
    }
}

/// Expired (with verification off), or expiring within `warning`.
fn grade_expiry(p: &mut Progress, c: &CertInfo, warning: Duration) {
    let now = Utc::now();
    let left = c.not_after - now;
    if left <= chrono::Duration::zero() {
        p.problem(CheckProblem::CertExpired {
            subject: c.subject.clone(),
            not_after: c.not_after,
        });
    } else if left.to_std().is_ok_and(|l| l < warning) {
        p.problem(CheckProblem::CertExpiring {
            subject: c.subject.clone(),
            not_after: c.not_after,
            days_left: left.num_days(),
        });
    }
}

/// The certificate of `chain` that expires first (the root is seldom
/// sent; when it is, it counts as well).
fn first_expiry(chain: &[CertificateDer<'_>]) -> Option<CertInfo> {
    chain
        .iter()
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)?;
            let subject = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| cert.subject().to_string());
            Some(CertInfo {
                subject: quote(&subject),
                not_after,
            })
        })
        .min_by_key(|c| c.not_after)
}

/// The TLS check: connect, handshake, grade the chain.
pub(super) async fn run(p: &mut Progress, ip: IpAddr, c: &TlsCheck, client: &Client, host: &str) {
    let Some(stream) = connect(p, SocketAddr::new(ip, c.port)).await else {
        return;
    };
    if let Some(mut s) = client
        .handshake(p, stream, host, c.cert_expiry_warning)
        .await
    {
        // Close politely; the answer does not matter.
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut s).await;
    }
}
