//! Mutual TLS between the processes of a cluster (proxy → node, node ↔
//! node, `rampart admin` → node): the settings every process shares, and
//! the tonic client/server configurations built from them.
//!
//! Every process has a certificate and key signed by the cluster CA and
//! trusts only that CA, on both ends of every gRPC link. A client checks
//! that the node it dials presents the name [`NODE_SERVER_NAME`] (every node
//! certificate carries it, no other does), so a proxy or admin certificate
//! cannot pose as a node. What a verified peer may call is decided by the
//! roles in its certificate ([`crate::cert_roles`]). docs/security.md.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The DNS name in every node certificate, checked by every client.
pub const NODE_SERVER_NAME: &str = "node.rampart.internal";

/// The refusal when neither certificates nor `--insecure` are given.
pub const MISSING_SETTINGS: &str = "mutual TLS inside the cluster needs \
     --cluster-tls-ca-file, --cluster-tls-cert-file and --cluster-tls-key-file \
     (`rampart certs --dir DIR` makes a throwaway set); pass --insecure to run \
     the cluster links in plaintext instead";

/// Logged at start by a process running with `--insecure`.
pub const INSECURE_WARNING: &str = "--insecure: cluster gRPC links are plaintext and \
     unauthenticated; anyone who reaches the node ports can read and change all data";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{MISSING_SETTINGS}")]
    Missing,
    #[error("--insecure and --cluster-tls-* files were both given; choose one")]
    Both,
    #[error("--cluster-tls-{0} is missing (the CA, certificate and key files go together)")]
    Incomplete(&'static str),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    NotPem { path: String, what: &'static str },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The three PEM files of a cluster identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How a process secures its cluster links, as its settings say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSecurity {
    /// Mutual TLS with these files.
    Tls(TlsFiles),
    /// Plaintext, asked for with `--insecure`.
    Insecure,
    /// Neither: the process must refuse to start ([`TlsError::Missing`]).
    Unset,
}

impl ClusterSecurity {
    /// From the `--cluster-tls-*` settings and `--insecure`; an incomplete
    /// set of files, or files and `--insecure` together, are errors.
    pub fn from_settings(
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        insecure: bool,
    ) -> Result<ClusterSecurity, TlsError> {
        match (ca, cert, key) {
            (None, None, None) if insecure => Ok(ClusterSecurity::Insecure),
            (None, None, None) => Ok(ClusterSecurity::Unset),
            _ if insecure => Err(TlsError::Both),
            (Some(ca), Some(cert), Some(key)) => {
                Ok(ClusterSecurity::Tls(TlsFiles { ca, cert, key }))
            }
            (None, _, _) => Err(TlsError::Incomplete("ca-file")),
            (_, None, _) => Err(TlsError::Incomplete("cert-file")),
            (_, _, None) => Err(TlsError::Incomplete("key-file")),
        }
    }

    /// Reads the files: `Some` for mutual TLS, `None` for `--insecure`
    /// (after logging [`INSECURE_WARNING`]), [`TlsError::Missing`] when
    /// neither was asked for.
    pub fn load(&self) -> Result<Option<ClusterTls>, TlsError> {
        match self {
            ClusterSecurity::Tls(files) => ClusterTls::load(files).map(Some),
            ClusterSecurity::Insecure => {
                tracing::warn!("{INSECURE_WARNING}");
                Ok(None)
            }
            ClusterSecurity::Unset => Err(TlsError::Missing),
        }
    }
}

/// A loaded cluster identity: the CA to trust and this process's own
/// certificate and key.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    ca: Certificate,
    identity: Identity,
}

fn read_pem(path: &Path, what: &'static str, marker: &str) -> Result<Vec<u8>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let found = std::str::from_utf8(&pem).is_ok_and(|text| text.contains(marker));
    if !found {
        return Err(TlsError::NotPem {
            path: path.display().to_string(),
            what,
        });
    }
    Ok(pem)
}

impl ClusterTls {
    pub fn load(files: &TlsFiles) -> Result<ClusterTls, TlsError> {
        let ca = read_pem(&files.ca, "certificate", "BEGIN CERTIFICATE")?;
        let cert = read_pem(&files.cert, "certificate", "BEGIN CERTIFICATE")?;
        let key = read_pem(&files.key, "private key", "PRIVATE KEY")?;
        let tls = ClusterTls {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(cert, key),
        };
        // tonic parses the PEM only when a config is applied: do it now so a
        // bad file stops the process at start, not at the first call.
        tonic::transport::Server::builder()
            .tls_config(tls.server())
            .map_err(|e| TlsError::Config(format!("{e:?}")))?;
        Endpoint::from_static("https://check.invalid")
            .tls_config(tls.client())
            .map_err(|e| TlsError::Config(format!("{e:?}")))?;
        Ok(tls)
    }

    /// A server that demands a client certificate chained to the CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// A client that presents this identity and accepts only a node
    /// certificate chained to the CA.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(NODE_SERVER_NAME)
    }
}

/// The endpoint of a node at `addr` (`host:port`): `https` with `tls`,
/// plaintext `http` without.
pub fn endpoint(tls: Option<&ClusterTls>, addr: &str) -> Result<Endpoint, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| format!("bad node address {addr}: {e}"))?;
    match tls {
        Some(tls) => endpoint
            .tls_config(tls.client())
            .map_err(|e| format!("TLS configuration for {addr}: {e:?}")),
        None => Ok(endpoint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_combinations() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            ClusterSecurity::from_settings(None, None, None, false).unwrap(),
            ClusterSecurity::Unset
        );
        assert_eq!(
            ClusterSecurity::from_settings(None, None, None, true).unwrap(),
            ClusterSecurity::Insecure
        );
        assert!(matches!(
            ClusterSecurity::from_settings(p("a"), p("b"), p("c"), false).unwrap(),
            ClusterSecurity::Tls(_)
        ));
        assert!(matches!(
            ClusterSecurity::from_settings(p("a"), p("b"), p("c"), true),
            Err(TlsError::Both)
        ));
        assert!(matches!(
            ClusterSecurity::from_settings(p("a"), None, p("c"), false),
            Err(TlsError::Incomplete("cert-file"))
        ));
        let missing = ClusterSecurity::Unset.load().unwrap_err().to_string();
        assert!(missing.contains("--insecure"), "{missing}");
    }

    #[test]
    fn unreadable_or_non_pem_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("rampart-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let files = TlsFiles {
            ca: junk.clone(),
            cert: junk.clone(),
            key: junk,
        };
        let err = ClusterTls::load(&files).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let files = TlsFiles {
            ca: dir.join("absent.pem"),
            ..files
        };
        let err = ClusterTls::load(&files).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
