//! Pub/sub fan-out (docs/pubsub.md). Nothing here touches Raft or RocksDB:
//! a node is a relay between the proxies linked to it.
//!
//! Every proxy keeps one `Subscribe` stream (a *link*) to every node and
//! declares on it how many of its clients subscribe to each channel,
//! pattern and shard channel. `Publish` sends the message, at most once, to
//! every link with a matching subscription and returns the number of
//! matching subscriptions. A link has a bounded buffer: when a proxy does not
//! keep up, messages for it are dropped (counted in
//! `rampart_pubsub_dropped_total`), never waited for, so a publisher is never
//! blocked by a slow proxy.
//!
//! The service runs on the node's client runtime, next to Kv.

// `tonic::Status` is what the service methods return.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::Stream;
use rampart_proto::glob::glob_match;
use rampart_proto::pb::pub_sub_event::Event;
use rampart_proto::pb::pub_sub_server::PubSub;
use rampart_proto::pb::{
    PubSubEvent, PubSubInterest, PubSubKind, PubSubQuery, PubSubQueryResponse, PublishRequest,
    PublishResponse, PublishedMessage,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Events buffered per link before messages for that proxy are dropped.
pub const LINK_BUFFER: usize = 8192;

/// Messages dropped because a proxy's link buffer was full.
pub const DROPPED_TOTAL: &str = "rampart_pubsub_dropped_total";
/// Messages published through this node.
pub const PUBLISHED_TOTAL: &str = "rampart_pubsub_published_total";

type EventSender = mpsc::Sender<Result<PubSubEvent, Status>>;

/// What one proxy declared: name -> number of its clients, per kind.
struct Link {
    tx: EventSender,
    interest: [HashMap<Vec<u8>, u32>; 3],
}

impl Link {
    /// Subscriptions of this proxy that a message on `channel` reaches.
    fn receivers(&self, kind: PubSubKind, channel: &[u8]) -> u64 {
        match kind {
            PubSubKind::Channel => {
                let direct = self.interest[kind_index(PubSubKind::Channel)]
                    .get(channel)
                    .copied()
                    .unwrap_or(0) as u64;
                let patterns: u64 = self.interest[kind_index(PubSubKind::Pattern)]
                    .iter()
                    .filter(|(pattern, _)| glob_match(pattern, channel))
                    .map(|(_, n)| *n as u64)
                    .sum();
                direct + patterns
            }
            PubSubKind::ShardChannel => self.interest[kind_index(PubSubKind::ShardChannel)]
                .get(channel)
                .copied()
                .unwrap_or(0) as u64,
            // Nothing is published to a pattern.
            PubSubKind::Pattern => 0,
        }
    }
}

fn kind_index(kind: PubSubKind) -> usize {
    match kind {
        PubSubKind::Channel => 0,
        PubSubKind::Pattern => 1,
        PubSubKind::ShardChannel => 2,
    }
}

/// The links of one node.
#[derive(Default)]
pub struct NodeHub {
    links: Mutex<HashMap<u64, Link>>,
    next_id: AtomicU64,
}

impl NodeHub {
    fn links(&self) -> MutexGuard<'_, HashMap<u64, Link>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, tx: EventSender) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.links().insert(
            id,
            Link {
                tx,
                interest: Default::default(),
            },
        );
        id
    }

    fn remove(&self, id: u64) {
        self.links().remove(&id);
    }

    /// Applies an interest update of link `id`.
    fn apply(&self, id: u64, update: &PubSubInterest) {
        let mut links = self.links();
        let Some(link) = links.get_mut(&id) else {
            return;
        };
        if update.reset {
            link.interest = Default::default();
        }
        for item in &update.items {
            // An unknown kind from a newer proxy is ignored, not fatal.
            let Ok(kind) = PubSubKind::try_from(item.kind) else {
                continue;
            };
            let map = &mut link.interest[kind_index(kind)];
            if item.subscribers == 0 {
                map.remove(&item.name);
            } else {
                map.insert(item.name.clone(), item.subscribers);
            }
        }
    }

    /// Sends `message` to every link with a matching subscription; returns
    /// the number of matching subscriptions. Never waits.
    pub fn publish(&self, message: PublishedMessage) -> u64 {
        let kind = match PubSubKind::try_from(message.kind) {
            Ok(PubSubKind::ShardChannel) => PubSubKind::ShardChannel,
            _ => PubSubKind::Channel,
        };
        metrics::counter!(PUBLISHED_TOTAL).increment(1);
        let links = self.links();
        let mut total = 0;
        for link in links.values() {
            let receivers = link.receivers(kind, &message.channel);
            if receivers == 0 {
                continue;
            }
            let event = PubSubEvent {
                event: Some(Event::Message(message.clone())),
            };
            match link.tx.try_send(Ok(event)) {
                Ok(()) => total += receivers,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!(DROPPED_TOTAL).increment(1);
                }
                // The link is going away; its proxy re-links elsewhere.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        total
    }

    /// PUBSUB introspection over every linked proxy's interest.
    pub fn query(&self, query: &PubSubQuery) -> Result<PubSubQueryResponse, Status> {
        let links = self.links();
        let names = |kind: PubSubKind| -> BTreeSet<Vec<u8>> {
            links
                .values()
                .flat_map(|l| l.interest[kind_index(kind)].keys())
                .filter(|name| {
                    query
                        .pattern
                        .as_ref()
                        .is_none_or(|pattern| glob_match(pattern, name))
                })
                .cloned()
                .collect()
        };
        let counts = |kind: PubSubKind| -> Vec<i64> {
            query
                .channels
                .iter()
                .map(|channel| {
                    links
                        .values()
                        .map(|l| {
                            l.interest[kind_index(kind)]
                                .get(channel)
                                .copied()
                                .unwrap_or(0) as i64
                        })
                        .sum()
                })
                .collect()
        };
        let mut response = PubSubQueryResponse::default();
        match query.subcommand.as_str() {
            "channels" => response.channels = names(PubSubKind::Channel).into_iter().collect(),
            "shardchannels" => {
                response.channels = names(PubSubKind::ShardChannel).into_iter().collect()
            }
            "numsub" => {
                response.channels = query.channels.clone();
                response.counts = counts(PubSubKind::Channel);
            }
            "shardnumsub" => {
                response.channels = query.channels.clone();
                response.counts = counts(PubSubKind::ShardChannel);
            }
            "numpat" => {
                let patterns: BTreeSet<&Vec<u8>> = links
                    .values()
                    .flat_map(|l| l.interest[kind_index(PubSubKind::Pattern)].keys())
                    .collect();
                response.numpat = patterns.len() as i64;
            }
            "counts" => {
                // INFO: distinct channels, patterns and shard channels.
                response.counts = [
                    PubSubKind::Channel,
                    PubSubKind::Pattern,
                    PubSubKind::ShardChannel,
                ]
                .into_iter()
                .map(|kind| {
                    links
                        .values()
                        .flat_map(|l| l.interest[kind_index(kind)].keys())
                        .collect::<BTreeSet<_>>()
                        .len() as i64
                })
                .collect();
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown pubsub query {other:?}"
                )))
            }
        }
        Ok(response)
    }
}

pub struct PubSubService {
    hub: Arc<NodeHub>,
    shutdown: watch::Receiver<bool>,
}

impl PubSubService {
    /// `shutdown` turning true ends every link, so the server can drain.
    pub fn new(hub: Arc<NodeHub>, shutdown: watch::Receiver<bool>) -> PubSubService {
        PubSubService { hub, shutdown }
    }
}

async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<PubSubEvent, Status>> + Send>>;

#[tonic::async_trait]
impl PubSub for PubSubService {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<Streaming<PubSubInterest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(LINK_BUFFER);
        let id = self.hub.register(tx.clone());
        let hub = self.hub.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let stop = shutdown_signal(shutdown);
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    update = inbound.message() => match update {
                        Ok(Some(update)) => {
                            hub.apply(id, &update);
                            let ack = PubSubEvent { event: Some(Event::Ack(update.version)) };
                            // Waits only for this link's own buffer.
                            tokio::select! {
                                sent = tx.send(Ok(ack)) => if sent.is_err() { break },
                                () = &mut stop => break,
                            }
                        }
                        Ok(None) | Err(_) => break,
                    },
                    () = &mut stop => break,
                }
            }
            // Dropping the last senders ends the response stream.
            hub.remove(id);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let message = request
            .into_inner()
            .message
            .ok_or_else(|| Status::invalid_argument("publish without a message"))?;
        let receivers = self.hub.publish(message);
        Ok(Response::new(PublishResponse {
            receivers: i64::try_from(receivers).unwrap_or(i64::MAX),
        }))
    }

    async fn introspect(
        &self,
        request: Request<PubSubQuery>,
    ) -> Result<Response<PubSubQueryResponse>, Status> {
        self.hub.query(request.get_ref()).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_proto::pb::InterestCount;

    fn interest(reset: bool, items: &[(PubSubKind, &str, u32)]) -> PubSubInterest {
        PubSubInterest {
            reset,
            version: 1,
            items: items
                .iter()
                .map(|(kind, name, n)| InterestCount {
                    kind: *kind as i32,
                    name: name.as_bytes().to_vec(),
                    subscribers: *n,
                })
                .collect(),
        }
    }

    fn message(kind: PubSubKind, channel: &str) -> PublishedMessage {
        PublishedMessage {
            kind: kind as i32,
            channel: channel.as_bytes().to_vec(),
            payload: b"p".to_vec(),
            origin: 1,
            seq: 1,
        }
    }

    #[tokio::test]
    async fn publish_counts_channels_and_patterns_and_skips_other_links() {
        let hub = NodeHub::default();
        let (tx_a, mut rx_a) = mpsc::channel(4);
        let (tx_b, mut rx_b) = mpsc::channel(4);
        let a = hub.register(tx_a);
        let b = hub.register(tx_b);
        hub.apply(
            a,
            &interest(
                true,
                &[
                    (PubSubKind::Channel, "news", 2),
                    (PubSubKind::Pattern, "n*", 1),
                ],
            ),
        );
        hub.apply(b, &interest(true, &[(PubSubKind::ShardChannel, "news", 1)]));
        assert_eq!(hub.publish(message(PubSubKind::Channel, "news")), 3);
        assert!(rx_a.try_recv().is_ok());
        assert!(rx_b.try_recv().is_err());
        assert_eq!(hub.publish(message(PubSubKind::ShardChannel, "news")), 1);
        assert!(rx_b.try_recv().is_ok());
        assert_eq!(hub.publish(message(PubSubKind::Channel, "other")), 0);
        // Removing interest and links.
        hub.apply(a, &interest(false, &[(PubSubKind::Channel, "news", 0)]));
        assert_eq!(hub.publish(message(PubSubKind::Channel, "news")), 1);
        hub.remove(a);
        assert_eq!(hub.publish(message(PubSubKind::Channel, "news")), 0);
    }

    #[tokio::test]
    async fn a_full_link_drops_instead_of_blocking() {
        let hub = NodeHub::default();
        let (tx, _rx) = mpsc::channel(1);
        let id = hub.register(tx);
        hub.apply(id, &interest(true, &[(PubSubKind::Channel, "c", 1)]));
        assert_eq!(hub.publish(message(PubSubKind::Channel, "c")), 1);
        assert_eq!(hub.publish(message(PubSubKind::Channel, "c")), 0);
    }

    #[test]
    fn queries_aggregate_over_links() {
        let hub = NodeHub::default();
        let (tx_a, _rx_a) = mpsc::channel(1);
        let (tx_b, _rx_b) = mpsc::channel(1);
        let a = hub.register(tx_a);
        let b = hub.register(tx_b);
        hub.apply(
            a,
            &interest(
                true,
                &[
                    (PubSubKind::Channel, "a1", 1),
                    (PubSubKind::Pattern, "x*", 1),
                ],
            ),
        );
        hub.apply(
            b,
            &interest(
                true,
                &[
                    (PubSubKind::Channel, "a1", 2),
                    (PubSubKind::Channel, "b1", 1),
                    (PubSubKind::Pattern, "x*", 3),
                    (PubSubKind::Pattern, "y*", 1),
                ],
            ),
        );
        let q = |sub: &str, pattern: Option<&str>, channels: &[&str]| {
            hub.query(&PubSubQuery {
                subcommand: sub.into(),
                pattern: pattern.map(|p| p.as_bytes().to_vec()),
                channels: channels.iter().map(|c| c.as_bytes().to_vec()).collect(),
            })
            .unwrap()
        };
        assert_eq!(
            q("channels", None, &[]).channels,
            vec![b"a1".to_vec(), b"b1".to_vec()]
        );
        assert_eq!(
            q("channels", Some("b*"), &[]).channels,
            vec![b"b1".to_vec()]
        );
        assert_eq!(q("numsub", None, &["a1", "zz"]).counts, vec![3, 0]);
        assert_eq!(q("numpat", None, &[]).numpat, 2);
        assert_eq!(q("counts", None, &[]).counts, vec![2, 2, 0]);
        assert!(q("shardchannels", None, &[]).channels.is_empty());
        assert!(hub
            .query(&PubSubQuery {
                subcommand: "nope".into(),
                ..Default::default()
            })
            .is_err());
    }
}
