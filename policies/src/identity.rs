//! Who a request is charged to. Layer 1's per-client gates (a class's
//! share and time budget) used to key on the client's IP alone, so tenants
//! behind one NAT address shared one budget, and one abusive tenant on a
//! shared app host spent the others'. A connection logged in as a named
//! ACL user is keyed by (user, IP) instead, and a user with its own share
//! of a class (`limit-share=<class>:<n>`, or `[policies.users.<name>]`) is
//! counted as one client over all its connections (docs/policies.md).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A key of the per-client gates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The default user (or nobody logged in): the client's IP.
    Ip(IpAddr),
    /// A named user at one IP.
    UserAt(Arc<str>, IpAddr),
    /// A named user with its own share of the class: all its connections.
    User(Arc<str>),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        ClientKey::Ip(ip)
    }
}

/// A client as Layer 1 sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub ip: IpAddr,
    /// `None`: the default user.
    pub user: Option<Arc<str>>,
    /// The user's own share per class name (requests at once).
    pub shares: Arc<BTreeMap<String, u32>>,
}

impl Identity {
    /// A client known only by its address.
    pub fn ip(ip: IpAddr) -> Identity {
        Identity {
            ip,
            user: None,
            shares: Arc::default(),
        }
    }

    /// `user` (the default user counts as none) at `ip`, with its shares.
    pub fn user(ip: IpAddr, user: &str, shares: BTreeMap<String, u32>) -> Identity {
        Identity {
            ip,
            user: (user != "default").then(|| Arc::from(user)),
            shares: Arc::new(shares),
        }
    }

    /// The key of the time budget, and of shares the user has none of.
    pub fn key(&self) -> ClientKey {
        match &self.user {
            None => ClientKey::Ip(self.ip),
            Some(user) => ClientKey::UserAt(user.clone(), self.ip),
        }
    }

    /// The share gate's key and bound for `class`: the user's own share
    /// (over all its connections) when it has one, else the class's
    /// per-client share (`None`).
    pub fn share(&self, class: &str) -> (ClientKey, Option<u32>) {
        match (&self.user, self.shares.get(class)) {
            (Some(user), Some(&own)) => (ClientKey::User(user.clone()), Some(own)),
            _ => (self.key(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_at_one_ip_are_different_clients_and_the_default_user_is_the_ip() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let anon = Identity::ip(ip);
        let default = Identity::user(ip, "default", BTreeMap::new());
        assert_eq!(anon.key(), default.key());
        assert_eq!(anon.key(), ClientKey::Ip(ip));
        let a = Identity::user(ip, "a", BTreeMap::new());
        let b = Identity::user(ip, "b", BTreeMap::new());
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), anon.key());
        assert_eq!(a.share("heavy_scan"), (a.key(), None));
    }

    #[test]
    fn a_users_own_share_counts_all_its_connections_together() {
        let shares = BTreeMap::from([("heavy_scan".to_string(), 1)]);
        let here = Identity::user("10.0.0.1".parse().unwrap(), "a", shares.clone());
        let there = Identity::user("10.0.0.2".parse().unwrap(), "a", shares);
        assert_eq!(here.share("heavy_scan"), there.share("heavy_scan"));
        assert_eq!(here.share("heavy_scan").1, Some(1));
        assert_ne!(here.share("heavy_data"), there.share("heavy_data"));
    }
}
