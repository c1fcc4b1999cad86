//! TLS for Redis clients (Redis 6's `tls-*` settings): the server
//! certificate, the CA that client certificates are checked against, and
//! whether clients must present one (`--tls-auth-clients yes|no|optional`).
//!
//! The rustls configuration lives behind an [`ArcSwap`]: every handshake
//! takes the current one, and [`ClientTls::reload`] (on SIGHUP) swaps in a
//! configuration built from the files re-read, so new handshakes use the new
//! certificate while established connections keep the session they have. A
//! file that does not load leaves the running configuration in place.
//!
//! Crypto provider: rustls's `ring` (docs/security.md says why).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish the TLS handshake before it is closed.
/// The connection counts against its IP's cap meanwhile (admission comes
/// first), so slow handshakes cannot pile up beyond the per-IP cap.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Redis's `tls-auth-clients`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthClients {
    /// A client certificate is required and verified against the CA.
    Yes,
    /// No client certificate is requested.
    No,
    /// A client certificate is verified if presented; clients without one
    /// are accepted.
    Optional,
}

impl FromStr for AuthClients {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "yes" => Ok(AuthClients::Yes),
            "no" => Ok(AuthClients::No),
            "optional" => Ok(AuthClients::Optional),
            other => Err(format!("{other:?}: expected yes, no or optional")),
        }
    }
}

impl fmt::Display for AuthClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthClients::Yes => "yes",
            AuthClients::No => "no",
            AuthClients::Optional => "optional",
        })
    }
}

impl rampart_proto::settings::ShowDefault for AuthClients {
    fn show(&self) -> String {
        self.to_string()
    }
}

/// Where the TLS material is and how clients are authenticated. The paths
/// are fixed at start; a reload re-reads the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Needed unless `auth_clients` is `No`.
    pub ca_cert_file: Option<PathBuf>,
    pub auth_clients: AuthClients,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in the file")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key in the file")]
    NoKey { path: PathBuf },
    #[error("--tls-auth-clients {0} needs --tls-ca-cert-file")]
    NoCa(AuthClients),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The live client TLS configuration of one proxy.
pub struct ClientTls {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Loads the files; fails if any is missing or unusable.
    pub fn load(files: TlsFiles) -> Result<ClientTls, TlsError> {
        let config = build(&files)?;
        Ok(ClientTls {
            files,
            current: ArcSwap::new(config),
        })
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Re-reads the files; on error the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files)?;
        self.current.store(config);
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_path_buf(),
        })
}

/// rustls's ring provider. Deprecated since rustls 0.23.48 because ring has
/// no post-quantum key exchange (X25519MLKEM768); the aws-lc-rs provider
/// that has one is a long C build, kept out on purpose (docs/security.md).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The rustls server configuration for `files` (ring provider, TLS 1.2 and
/// 1.3). `with_single_cert` also checks that the key matches the
/// certificate, so a half-updated pair is refused.
fn build(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(ring_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match files.auth_clients {
        AuthClients::No => builder.with_no_client_auth(),
        auth => {
            let ca = files.ca_cert_file.as_deref().ok_or(TlsError::NoCa(auth))?;
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == AuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let config = builder.with_single_cert(
        certificates(&files.cert_file)?,
        private_key(&files.key_file)?,
    )?;
    Ok(Arc::new(config))
}

/// A client's byte stream: plain TCP or TLS over TCP. The connection loop
/// is the same for both.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl ClientStream {
    /// The TCP socket underneath (addresses, hang-up detection).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        dir: PathBuf,
    }

    /// A CA and a server certificate signed by it, as PEM files in `dir`.
    fn pki(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("rampart-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    impl Pki {
        fn files(&self, auth_clients: AuthClients) -> TlsFiles {
            TlsFiles {
                cert_file: self.dir.join("server.crt"),
                key_file: self.dir.join("server.key"),
                ca_cert_file: Some(self.dir.join("ca.crt")),
                auth_clients,
            }
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn loads_every_auth_mode_and_needs_a_ca_to_verify_clients() {
        let pki = pki("modes");
        for auth in [AuthClients::Yes, AuthClients::No, AuthClients::Optional] {
            ClientTls::load(pki.files(auth)).unwrap();
        }
        let mut no_ca = pki.files(AuthClients::Yes);
        no_ca.ca_cert_file = None;
        assert!(matches!(
            ClientTls::load(no_ca.clone()),
            Err(TlsError::NoCa(AuthClients::Yes))
        ));
        no_ca.auth_clients = AuthClients::No;
        ClientTls::load(no_ca).unwrap();
        assert_eq!("OPTIONAL".parse(), Ok(AuthClients::Optional));
        assert!("maybe".parse::<AuthClients>().is_err());
    }

    #[test]
    fn a_bad_file_on_reload_keeps_the_running_configuration() {
        let pki = pki("reload");
        let tls = ClientTls::load(pki.files(AuthClients::No)).unwrap();
        let before = tls.current.load_full();
        std::fs::write(pki.dir.join("server.crt"), "not a certificate").unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::NoCertificate { .. })));
        assert!(Arc::ptr_eq(&before, &tls.current.load_full()));
        // A key that does not belong to the certificate is refused too.
        let other = self::pki("reload-other");
        std::fs::copy(other.dir.join("server.crt"), pki.dir.join("server.crt")).unwrap();
        assert!(tls.reload().is_err());
        std::fs::copy(other.dir.join("server.key"), pki.dir.join("server.key")).unwrap();
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &tls.current.load_full()));
    }
}
