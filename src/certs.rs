//! `rampart certs`: a throwaway cluster CA and the certificates a local
//! cluster needs for mutual TLS (docs/security.md): one per node, one for
//! the proxy, one for `rampart admin`. For development, tests and the
//! compose file; a production cluster should use its own PKI with the same
//! names and roles.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rampart_proto::cert_roles::Role;
use rampart_proto::cluster_tls::NODE_SERVER_NAME;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Args)]
pub struct CertsArgs {
    /// Folder to write the PEM files into (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Node certificates to make: node-1.pem .. node-N.pem.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Replace the files if the folder already holds a set.
    #[arg(long)]
    force: bool,
}

pub fn run(args: CertsArgs) -> Result<()> {
    if exists(&args.dir) && !args.force {
        bail!(
            "{} already holds ca.pem; pass --force to make a new set",
            args.dir.display()
        );
    }
    generate(&args.dir, args.nodes)?;
    println!(
        "wrote ca.pem, node-1..{n}.pem, proxy.pem, admin.pem and their -key.pem files to {}",
        args.dir.display(),
        n = args.nodes
    );
    Ok(())
}

/// The CA certificate of a set in `dir`.
pub fn ca(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// The certificate and key of `name` (`node-1`, `proxy`, `admin`) in `dir`.
pub fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    )
}

/// The `--cluster-tls-*` flags for `name`'s certificate in `dir`.
pub fn flags(dir: &Path, name: &str) -> Vec<String> {
    let (cert, key) = pair(dir, name);
    vec![
        "--cluster-tls-ca-file".into(),
        ca(dir).display().to_string(),
        "--cluster-tls-cert-file".into(),
        cert.display().to_string(),
        "--cluster-tls-key-file".into(),
        key.display().to_string(),
    ]
}

pub fn exists(dir: &Path) -> bool {
    ca(dir).exists()
}

/// Writes a new CA and the node, proxy and admin certificates into `dir`.
/// The CA's key is not kept: a new member needs a new set.
pub fn generate(dir: &Path, nodes: u32) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Rampart cluster CA (throwaway)");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    std::fs::write(ca(dir), ca_cert.pem())?;

    let mut members: Vec<(String, Role)> = (1..=nodes)
        .map(|i| (format!("node-{i}"), Role::Node))
        .collect();
    members.push(("proxy".into(), Role::Proxy));
    members.push(("admin".into(), Role::Admin));
    for (name, role) in members {
        // Only node certificates carry the name clients check, so no other
        // certificate can pose as a node.
        let dns = match role {
            Role::Node => vec![NODE_SERVER_NAME.to_string()],
            _ => Vec::new(),
        };
        let mut params = CertificateParams::new(dns)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rampart {name}"));
        params
            .subject_alt_names
            .push(SanType::URI(role.uri().try_into()?));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        let (cert_path, key_path) = pair(dir, &name);
        std::fs::write(&cert_path, cert.pem())?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
    }
    Ok(())
}

/// Writes a key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_proto::cert_roles::roles;

    fn der(pem: &str) -> Vec<u8> {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        base64_decode(&body)
    }

    /// A small decoder so the test needs no base64 crate.
    fn base64_decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in text.bytes().filter(|&c| c != b'=') {
            acc = (acc << 6) | value(c) as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    #[test]
    fn each_certificate_carries_its_role() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 2).unwrap();
        for (name, role) in [
            ("node-1", Role::Node),
            ("node-2", Role::Node),
            ("proxy", Role::Proxy),
            ("admin", Role::Admin),
        ] {
            let pem = std::fs::read_to_string(pair(dir.path(), name).0).unwrap();
            assert_eq!(roles(&der(&pem)), vec![role], "{name}");
        }
        let ca = std::fs::read_to_string(ca(dir.path())).unwrap();
        assert!(roles(&der(&ca)).is_empty());
        assert!(exists(dir.path()));
    }
}
