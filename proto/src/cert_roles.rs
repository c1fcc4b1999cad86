//! The roles a cluster certificate grants, read from its subject alternative
//! names: a URI `urn:rampart:role:<role>` per role (docs/security.md).
//!
//! The TLS handshake has already checked that the certificate chains to the
//! cluster CA; this only reads what the CA put in it. A full X.509 parser
//! would be a large dependency for one extension, so this walks the DER
//! down to the SAN extension by hand: certificate → tbsCertificate → [3]
//! extensions → the extension with id 2.5.29.17 → its URI names. Anything
//! malformed yields no roles (the caller then refuses the call).

use std::fmt;

/// Prefix of a role URI in a certificate's subject alternative names.
pub const ROLE_URI_PREFIX: &str = "urn:rampart:role:";

/// What a cluster member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A storage node: Raft transport, and node-to-node Kv.
    Node,
    /// A proxy: Kv (internal commands included) and PubSub.
    Proxy,
    /// An operator's `rampart admin`: the Admin service and Kv.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Node, Role::Proxy, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Proxy => "proxy",
            Role::Admin => "admin",
        }
    }

    /// `urn:rampart:role:node` etc.
    pub fn uri(self) -> String {
        format!("{ROLE_URI_PREFIX}{}", self.name())
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The roles named in the SAN URIs of a DER certificate (empty when there
/// are none or the certificate cannot be read).
pub fn roles(cert_der: &[u8]) -> Vec<Role> {
    let mut roles = Vec::new();
    for uri in san_uris(cert_der).unwrap_or_default() {
        if let Some(role) = uri.strip_prefix(ROLE_URI_PREFIX).and_then(Role::parse) {
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
    }
    roles
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT Extensions` in tbsCertificate.
const EXTENSIONS: u8 = 0xa3;
/// `uniformResourceIdentifier [6] IMPLICIT IA5String` in GeneralName.
const URI_NAME: u8 = 0x86;
/// 2.5.29.17, subjectAltName.
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// The URI names of the subject alternative name extension, `None` if the
/// DER is malformed.
fn san_uris(der: &[u8]) -> Option<Vec<&str>> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut fields = tbs;
    let extensions = loop {
        if fields.is_empty() {
            return Some(Vec::new());
        }
        let (tag, value, rest) = tlv(fields)?;
        if tag == EXTENSIONS {
            break value;
        }
        fields = rest;
    };
    let (mut list, _) = expect(extensions, SEQUENCE)?;
    while !list.is_empty() {
        let (extension, rest) = expect(list, SEQUENCE)?;
        list = rest;
        let (oid, mut inner) = expect(extension, OID)?;
        if oid != SAN_OID {
            continue;
        }
        // Skip the optional `critical` BOOLEAN up to the value.
        let value = loop {
            let (tag, value, rest) = tlv(inner)?;
            if tag == OCTET_STRING {
                break value;
            }
            inner = rest;
        };
        let (mut names, _) = expect(value, SEQUENCE)?;
        let mut uris = Vec::new();
        while !names.is_empty() {
            let (tag, name, rest) = tlv(names)?;
            if tag == URI_NAME {
                uris.push(std::str::from_utf8(name).ok()?);
            }
            names = rest;
        }
        return Some(uris);
    }
    Some(Vec::new())
}

/// The value of a TLV with tag `want`, and what follows it.
fn expect(der: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, value, rest) = tlv(der)?;
    (tag == want).then_some((value, rest))
}

/// One DER tag-length-value: (tag, value, rest). Only single-byte tags,
/// which is all X.509 uses up to the names read here.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | b as usize);
        rest = &rest[count..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()), Some(role));
            assert!(role.uri().starts_with(ROLE_URI_PREFIX));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn tlv_reads_short_and_long_lengths() {
        assert_eq!(
            tlv(&[0x04, 0x02, 1, 2, 9]),
            Some((0x04, &[1u8, 2][..], &[9u8][..]))
        );
        let mut long = vec![0x04, 0x81, 200];
        long.extend([7u8; 200]);
        assert_eq!(
            tlv(&long).map(|(_, v, r)| (v.len(), r.len())),
            Some((200, 0))
        );
        assert_eq!(tlv(&[0x04, 0x05, 1]), None, "truncated");
        assert_eq!(tlv(&[0x04, 0x85, 1, 1, 1, 1, 1]), None, "too long a length");
    }

    #[test]
    fn garbage_has_no_roles() {
        assert!(roles(&[]).is_empty());
        assert!(roles(&[0x30, 0x03, 0x30, 0x01, 0xff]).is_empty());
        assert!(roles(b"urn:rampart:role:admin").is_empty());
    }
}
