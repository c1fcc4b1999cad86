//! Layer 3 at accept time: the per-peer-IP connection cap, per-CIDR
//! overrides, and reject-rate limiting.
//!
//! Counting: [`ConnectionLimiter::admit`] increments the peer's count
//! atomically with the check (one dashmap shard lock), and the returned
//! [`ConnectionGuard`] decrements it when dropped, however the connection
//! ends (client quit, error, kill, panic of its task, shutdown).
//!
//! Rejecting: a rejected connect normally gets the exact line
//! `-ERR max connections per client exceeded\r\n` and a close. Each reject
//! also draws from a per-IP `governor` quota (R per second, burst B); once an
//! IP exhausts it, its further rejects are closed with SO_LINGER 0 (a TCP
//! reset) without writing anything, so a reconnect storm costs one accept
//! and one close each. The quota refills at R/s, so a calmed-down client
//! sees the error text again.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::canonical_ip;
use crate::metrics::{
    CLIENT_CONNECTIONS, CLIENT_IPS, CONNECTIONS_ACCEPTED, CONNECTIONS_OPEN, CONNECTIONS_REJECTED,
};
use crate::resolved::ConnectionPolicy;

/// The exact bytes an over-the-cap client receives.
pub const MAX_CONNECTIONS_REPLY: &[u8] = b"-ERR max connections per client exceeded\r\n";

/// After writing the error, how long the proxy reads (and discards) what the
/// client already sent before closing. Closing a socket with unread input
/// makes the kernel send a reset that can destroy the error line in flight.
const REJECT_LINGER: Duration = Duration::from_millis(500);
/// At most this many rejected sockets linger at once; beyond, they close at once.
const MAX_LINGERING: usize = 256;

type Limiter<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// What to do with a new connection.
#[derive(Debug)]
pub enum Decision {
    Admit(ConnectionGuard),
    /// Over the cap: write [`MAX_CONNECTIONS_REPLY`] and close.
    Reject,
    /// Over the cap during a reject storm: reset, write nothing.
    Reset,
}

#[derive(Debug)]
struct Counts {
    per_ip: DashMap<IpAddr, u32>,
}

/// Holds one counted connection; dropping it releases the count.
#[derive(Debug)]
pub struct ConnectionGuard {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(mut n) = self.counts.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
        }
        self.counts.per_ip.remove_if(&self.ip, |_, n| *n == 0);
        metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// The accept-time filter.
pub struct ConnectionLimiter<C: Clock + Clone = DefaultClock> {
    counts: Arc<Counts>,
    policy: ArcSwap<ConnectionPolicy>,
    enabled: ArcSwap<bool>,
    rejects: ArcSwap<Option<Limiter<C>>>,
    clock: C,
    lingering: Arc<tokio::sync::Semaphore>,
    published: Mutex<Vec<IpAddr>>,
}

impl<C: Clock + Clone> std::fmt::Debug for ConnectionLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionLimiter")
            .field("policy", &self.policy.load())
            .field("ips", &self.counts.per_ip.len())
            .finish()
    }
}

impl ConnectionLimiter<DefaultClock> {
    pub fn new(policy: ConnectionPolicy, enabled: bool) -> Self {
        ConnectionLimiter::with_clock(policy, enabled, DefaultClock::default())
    }
}

impl<C: Clock + Clone> ConnectionLimiter<C> {
    /// With an explicit clock for the reject-rate quota (tests use governor's
    /// `FakeRelativeClock`).
    pub fn with_clock(policy: ConnectionPolicy, enabled: bool, clock: C) -> Self {
        let rejects = reject_limiter(&policy, &clock);
        ConnectionLimiter {
            counts: Arc::new(Counts {
                per_ip: DashMap::new(),
            }),
            policy: ArcSwap::from_pointee(policy),
            enabled: ArcSwap::from_pointee(enabled),
            rejects: ArcSwap::from_pointee(rejects),
            clock,
            lingering: Arc::new(tokio::sync::Semaphore::new(MAX_LINGERING)),
            published: Mutex::new(Vec::new()),
        }
    }

    /// New caps apply to new connections; open ones stay open (and counted).
    pub fn reload(&self, policy: ConnectionPolicy, enabled: bool) {
        let old = self.policy.load();
        if old.reject_rate_per_sec != policy.reject_rate_per_sec
            || old.reject_burst != policy.reject_burst
        {
            self.rejects
                .store(Arc::new(reject_limiter(&policy, &self.clock)));
        }
        self.policy.store(Arc::new(policy));
        self.enabled.store(Arc::new(enabled));
    }

    /// Decides on a connection from `ip` (counting it when admitted).
    pub fn admit(&self, ip: IpAddr) -> Decision {
        let ip = canonical_ip(ip);
        let cap = if **self.enabled.load() {
            self.policy.load().cap_for(ip)
        } else {
            None
        };
        {
            let mut n = self.counts.per_ip.entry(ip).or_insert(0);
            match cap {
                Some(cap) if *n >= cap => {}
                _ => {
                    *n += 1;
                    drop(n);
                    metrics::counter!(CONNECTIONS_ACCEPTED).increment(1);
                    metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
                    return Decision::Admit(ConnectionGuard {
                        counts: self.counts.clone(),
                        ip,
                    });
                }
            }
        }
        // Rejected: an entry created by or_insert(0) above must not stay.
        self.counts.per_ip.remove_if(&ip, |_, n| *n == 0);
        let storm = match &**self.rejects.load() {
            Some(limiter) => limiter.check_key(&ip).is_err(),
            None => false,
        };
        if storm {
            metrics::counter!(CONNECTIONS_REJECTED, "mode" => "reset").increment(1);
            Decision::Reset
        } else {
            metrics::counter!(CONNECTIONS_REJECTED, "mode" => "error").increment(1);
            Decision::Reject
        }
    }

    /// Open connections counted for `ip`.
    pub fn open_for(&self, ip: IpAddr) -> u32 {
        self.counts
            .per_ip
            .get(&canonical_ip(ip))
            .map(|n| *n)
            .unwrap_or(0)
    }

    /// The `n` IPs with the most open connections, most first.
    pub fn top(&self, n: usize) -> Vec<(IpAddr, u32)> {
        let mut all: Vec<(IpAddr, u32)> = self
            .counts
            .per_ip
            .iter()
            .map(|e| (*e.key(), *e.value()))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Periodic upkeep: publishes the per-IP gauges of the top talkers
    /// (others published before are set to 0, so the series stay bounded by
    /// the IPs that were ever in the top) and forgets idle reject quotas.
    pub fn housekeeping(&self) {
        let n = self.policy.load().top_ips;
        let top = self.top(n);
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for ip in published.iter() {
            if !top.iter().any(|(t, _)| t == ip) {
                metrics::gauge!(CLIENT_CONNECTIONS, "ip" => ip.to_string()).set(0.0);
            }
        }
        for (ip, count) in &top {
            metrics::gauge!(CLIENT_CONNECTIONS, "ip" => ip.to_string()).set(f64::from(*count));
        }
        *published = top.into_iter().map(|(ip, _)| ip).collect();
        metrics::gauge!(CLIENT_IPS).set(self.counts.per_ip.len() as f64);
        if let Some(limiter) = &**self.rejects.load() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Number of IPs with a reject quota in use (for tests).
    pub fn tracked_reject_ips(&self) -> usize {
        self.rejects.load().as_ref().as_ref().map_or(0, |l| l.len())
    }

    /// Carries out a [`Decision::Reject`]/[`Decision::Reset`] on `socket`
    /// without blocking the accept loop.
    pub fn close_rejected(&self, socket: TcpStream, decision: &Decision) {
        match decision {
            Decision::Admit(_) => {}
            Decision::Reset => reset(socket),
            Decision::Reject => {
                // A fresh socket's send buffer takes these bytes at once.
                let _ = socket.try_write(MAX_CONNECTIONS_REPLY);
                match self.lingering.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(async move {
                            linger_then_close(socket).await;
                            drop(permit);
                        });
                    }
                    Err(_) => drop(socket),
                }
            }
        }
    }
}

fn reject_limiter<C: Clock + Clone>(policy: &ConnectionPolicy, clock: &C) -> Option<Limiter<C>> {
    let rate = NonZeroU32::new(policy.reject_rate_per_sec)?;
    let burst = NonZeroU32::new(policy.reject_burst).unwrap_or(rate);
    Some(RateLimiter::dashmap_with_clock(
        Quota::per_second(rate).allow_burst(burst),
        clock.clone(),
    ))
}

/// Closes `socket` with SO_LINGER 0: the kernel sends RST and frees the
/// socket at once (no TIME_WAIT, no FIN handshake).
pub fn reset(socket: TcpStream) {
    if let Err(e) = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO)) {
        tracing::debug!(error = %e, "SO_LINGER 0 failed; closing normally");
    }
    drop(socket);
}

/// Half-closes after the error line, then discards input until the client
/// closes or [`REJECT_LINGER`] passes, so the line is not lost to a reset.
async fn linger_then_close(mut socket: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = socket.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(REJECT_LINGER, async {
        loop {
            match socket.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyConfig;
    use governor::clock::FakeRelativeClock;

    fn policy(text: &str) -> ConnectionPolicy {
        toml::from_str::<PolicyConfig>(text)
            .unwrap()
            .resolve()
            .unwrap()
            .connections
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn is_admit(d: &Decision) -> bool {
        matches!(d, Decision::Admit(_))
    }

    #[test]
    fn connection_past_the_default_cap_is_rejected_and_other_ips_are_not() {
        let limiter = ConnectionLimiter::new(policy(""), true);
        let cap = crate::config::DEFAULT_PER_IP_MAX;
        let held: Vec<Decision> = (0..cap).map(|_| limiter.admit(ip("127.0.0.2"))).collect();
        assert!(held.iter().all(is_admit));
        assert!(matches!(limiter.admit(ip("127.0.0.2")), Decision::Reject));
        assert!(is_admit(&limiter.admit(ip("127.0.0.3"))));
        assert_eq!(limiter.open_for(ip("127.0.0.2")), cap);
        assert_eq!(limiter.open_for(ip("127.0.0.3")), 0, "dropped at once");
        let mut held = held;
        held.pop();
        assert_eq!(limiter.open_for(ip("127.0.0.2")), cap - 1);
        assert!(is_admit(&limiter.admit(ip("127.0.0.2"))));
    }

    #[test]
    fn counts_vanish_when_the_last_connection_ends() {
        let limiter = ConnectionLimiter::new(policy(""), true);
        let a = limiter.admit(ip("10.0.0.1"));
        let b = limiter.admit(ip("::ffff:10.0.0.1"));
        assert_eq!(
            limiter.open_for(ip("10.0.0.1")),
            2,
            "v4-mapped is the same IP"
        );
        drop((a, b));
        assert!(limiter.top(10).is_empty());
    }

    #[test]
    fn cidr_overrides_raise_lower_and_bypass() {
        let limiter = ConnectionLimiter::new(
            policy(
                r#"
                [connections]
                per_ip_max = 2
                [[connections.cidr]]
                cidr = "10.0.0.0/8"
                max = 4
                [[connections.cidr]]
                cidr = "10.0.0.9/32"
                allow = true
                [[connections.cidr]]
                cidr = "192.168.0.0/16"
                max = 1
                "#,
            ),
            true,
        );
        let count = |addr: &str, tries: usize| {
            let ds: Vec<Decision> = (0..tries).map(|_| limiter.admit(ip(addr))).collect();
            ds.iter().filter(|d| is_admit(d)).count()
        };
        assert_eq!(count("10.1.1.1", 10), 4);
        assert_eq!(count("10.0.0.9", 100), 100);
        assert_eq!(count("192.168.1.1", 10), 1);
        assert_eq!(count("172.16.0.1", 10), 2);
    }

    #[test]
    fn reject_storm_switches_to_resets_and_back_when_calm() {
        let clock = FakeRelativeClock::default();
        let limiter = ConnectionLimiter::with_clock(
            policy("[connections]\nper_ip_max = 1\nreject_rate_per_sec = 20\n"),
            true,
            clock.clone(),
        );
        let _held = limiter.admit(ip("127.0.0.2"));
        let mut errors = 0;
        let mut resets = 0;
        for _ in 0..1000 {
            match limiter.admit(ip("127.0.0.2")) {
                Decision::Reject => errors += 1,
                Decision::Reset => resets += 1,
                Decision::Admit(_) => panic!("over the cap"),
            }
        }
        assert_eq!(errors, 20, "the burst gets the error text");
        assert_eq!(resets, 980);
        // Another IP is not affected by this one's storm.
        let _other = limiter.admit(ip("127.0.0.3"));
        assert!(matches!(limiter.admit(ip("127.0.0.3")), Decision::Reject));
        // Calm for a second: the quota refills and the text comes back.
        clock.advance(Duration::from_secs(1));
        assert!(matches!(limiter.admit(ip("127.0.0.2")), Decision::Reject));
        limiter.housekeeping();
        assert!(limiter.tracked_reject_ips() <= 2);
    }

    #[test]
    fn reload_changes_the_cap_for_new_connections_only() {
        let limiter = ConnectionLimiter::new(policy("[connections]\nper_ip_max = 3\n"), true);
        let held: Vec<Decision> = (0..3).map(|_| limiter.admit(ip("127.0.0.2"))).collect();
        limiter.reload(policy("[connections]\nper_ip_max = 1\n"), true);
        assert!(matches!(limiter.admit(ip("127.0.0.2")), Decision::Reject));
        assert_eq!(limiter.open_for(ip("127.0.0.2")), 3, "open ones stay");
        drop(held);
        assert!(is_admit(&limiter.admit(ip("127.0.0.2"))));
        limiter.reload(policy(""), false);
        let many: Vec<Decision> = (0..50).map(|_| limiter.admit(ip("127.0.0.2"))).collect();
        assert!(many.iter().all(is_admit), "disabled: no cap");
    }

    #[test]
    fn top_talkers_are_sorted() {
        let limiter = ConnectionLimiter::new(policy(""), true);
        let _a: Vec<Decision> = (0..3).map(|_| limiter.admit(ip("10.0.0.1"))).collect();
        let _b: Vec<Decision> = (0..5).map(|_| limiter.admit(ip("10.0.0.2"))).collect();
        let _c = limiter.admit(ip("10.0.0.3"));
        assert_eq!(
            limiter.top(2),
            vec![(ip("10.0.0.2"), 5), (ip("10.0.0.1"), 3)]
        );
        limiter.housekeeping();
    }

    #[tokio::test]
    async fn rejected_sockets_get_the_exact_text_or_a_reset() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limiter = ConnectionLimiter::new(policy(""), true);

        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.map(|_| buf)
        });
        let (socket, _) = listener.accept().await.unwrap();
        limiter.close_rejected(socket, &Decision::Reject);
        assert_eq!(client.await.unwrap().unwrap(), MAX_CONNECTIONS_REPLY);

        // The reset may surface in connect (not yet polled) or in the read.
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.map(|_| buf)
        });
        let (socket, _) = listener.accept().await.unwrap();
        limiter.close_rejected(socket, &Decision::Reset);
        let err = client.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    }
}
