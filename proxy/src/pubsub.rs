//! Pub/sub across proxies (docs/pubsub.md).
//!
//! - [`PubSub`]: the proxy's hub. It knows which local client subscribes to
//!   what, keeps one link (a `PubSub.Subscribe` gRPC stream) to every node,
//!   declares the proxy's interest on each link (per-name subscriber counts,
//!   a full snapshot on every connect), and hands every message arriving on
//!   a link to the matching clients' [`Outbox`]es. PUBLISH goes to one node
//!   (the first linked node in `--nodes` order), which relays it to every
//!   proxy linked to it; a publish retried on another node carries the same
//!   id, so a receiver drops the copy.
//! - [`Outbox`]: one client's bounded queue of pushed messages. Delivering
//!   never waits; a client whose queued plus unwritten bytes pass
//!   `--pubsub-output-buffer-limit` is cut off (Redis's
//!   `client-output-buffer-limit pubsub` hard limit).
//! - [`ClientPubSub`]: one connection's subscriptions (in its session);
//!   dropping it unsubscribes everything.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rampart_proto::cluster_tls::{self, ClusterTls};
use rampart_proto::glob::glob_match;
use rampart_proto::pb::pub_sub_client::PubSubClient;
use rampart_proto::pb::pub_sub_event::Event;
use rampart_proto::pb::{
    InterestCount, PubSubInterest, PubSubKind, PubSubQuery, PubSubQueryResponse, PublishRequest,
    PublishedMessage,
};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::error::ProxyError;
use crate::registry::ClientHandle;
use crate::resp::Protocol;

/// Default `--pubsub-output-buffer-limit`, Redis's pubsub hard limit.
pub const DEFAULT_OUTPUT_BUFFER_LIMIT: u64 = 32 * 1024 * 1024;
/// Default `--pubsub-output-buffer-soft-limit`, Redis's pubsub soft limit.
pub const DEFAULT_OUTPUT_BUFFER_SOFT_LIMIT: u64 = 8 * 1024 * 1024;
/// Default `--pubsub-output-buffer-soft-seconds`.
pub const DEFAULT_OUTPUT_BUFFER_SOFT_SECONDS: u64 = 60;

/// Redis's `client-output-buffer-limit pubsub <hard> <soft> <seconds>`:
/// a client is cut off at once past `hard` bytes pending, or when it has
/// stayed past `soft` bytes for longer than `soft_for` (0 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    pub hard: usize,
    pub soft: usize,
    pub soft_for: Duration,
}

impl OutputLimits {
    /// Only a hard limit (0 = none).
    pub fn hard(hard: usize) -> OutputLimits {
        OutputLimits {
            hard,
            soft: 0,
            soft_for: Duration::ZERO,
        }
    }
}

/// How long SUBSCRIBE waits for the linked nodes to confirm the new
/// interest before answering anyway.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// Message ids remembered to drop the copy of a retried publish.
const RECENT_IDS: usize = 65_536;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Per-attempt bound of a PUBLISH / PUBSUB call to one node.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// A link up for this long is preferred for PUBLISH over newer ones: the
/// other proxies (reconnecting with at most [`MAX_BACKOFF`]) are linked to
/// its node by then.
const SETTLE: Duration = Duration::from_secs(3);
/// Bytes of pushed messages encoded per socket write.
const DRAIN_CHUNK: usize = 256 * 1024;

/// Clients cut off for passing the output buffer limit, by `limit`
/// (`hard` or `soft`).
pub const CLIENTS_CUT_TOTAL: &str = "rampart_pubsub_slow_clients_disconnected_total";
/// Messages handed to subscribed clients of this proxy (one per receiving
/// subscription), by `kind` (`message`, `pmessage`, `smessage`).
pub const MESSAGES_TOTAL: &str = "rampart_pubsub_messages_total";
/// Clients of this proxy with at least one subscription.
pub const SUBSCRIBED_CLIENTS: &str = "rampart_pubsub_subscribed_clients";

/// The three subscription namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE (glob patterns over channels).
    Pattern,
    /// SSUBSCRIBE / SPUBLISH.
    Shard,
}

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::Channel => 0,
            Kind::Pattern => 1,
            Kind::Shard => 2,
        }
    }

    fn pb(self) -> PubSubKind {
        match self {
            Kind::Channel => PubSubKind::Channel,
            Kind::Pattern => PubSubKind::Pattern,
            Kind::Shard => PubSubKind::ShardChannel,
        }
    }
}

// ---------------------------------------------------------------------------
// The per-client queue.

/// A message waiting to be written to one client.
#[derive(Debug, Clone)]
enum Delivery {
    Message {
        channel: Bytes,
        payload: Bytes,
    },
    PMessage {
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
    SMessage {
        channel: Bytes,
        payload: Bytes,
    },
}

impl Delivery {
    fn kind(&self) -> &'static str {
        match self {
            Delivery::Message { .. } => "message",
            Delivery::PMessage { .. } => "pmessage",
            Delivery::SMessage { .. } => "smessage",
        }
    }

    /// What it costs in the client's output buffer (its RESP size).
    fn size(&self) -> usize {
        let bulk = |b: &Bytes| b.len() + 16;
        match self {
            Delivery::Message { channel, payload } => 4 + 13 + bulk(channel) + bulk(payload),
            Delivery::PMessage {
                pattern,
                channel,
                payload,
            } => 4 + 14 + bulk(pattern) + bulk(channel) + bulk(payload),
            Delivery::SMessage { channel, payload } => 4 + 14 + bulk(channel) + bulk(payload),
        }
    }

    fn encode(&self, out: &mut BytesMut, protocol: Protocol) {
        match self {
            Delivery::Message { channel, payload } => encode_push(
                out,
                protocol,
                &[
                    Item::Bulk(b"message"),
                    Item::Bulk(channel),
                    Item::Bulk(payload),
                ],
            ),
            Delivery::PMessage {
                pattern,
                channel,
                payload,
            } => encode_push(
                out,
                protocol,
                &[
                    Item::Bulk(b"pmessage"),
                    Item::Bulk(pattern),
                    Item::Bulk(channel),
                    Item::Bulk(payload),
                ],
            ),
            Delivery::SMessage { channel, payload } => encode_push(
                out,
                protocol,
                &[
                    Item::Bulk(b"smessage"),
                    Item::Bulk(channel),
                    Item::Bulk(payload),
                ],
            ),
        }
    }
}

/// One element of a pushed array.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    Bulk(&'a [u8]),
    Null,
    Integer(i64),
}

/// Writes a pub/sub array: a RESP3 push (`>`) or, in RESP2, an array.
pub fn encode_push(out: &mut BytesMut, protocol: Protocol, items: &[Item<'_>]) {
    let head = match protocol {
        Protocol::Resp2 => b'*',
        Protocol::Resp3 => b'>',
    };
    out.extend_from_slice(&[head]);
    out.extend_from_slice(items.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for item in items {
        match item {
            Item::Bulk(data) => {
                out.extend_from_slice(b"$");
                out.extend_from_slice(data.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Item::Null => match protocol {
                Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
            },
            Item::Integer(n) => {
                out.extend_from_slice(b":");
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

#[derive(Debug, Default)]
struct OutboxState {
    queue: VecDeque<Delivery>,
    /// Queued bytes plus bytes taken but not yet written to the socket.
    bytes: usize,
    /// Since when `bytes` has been past the soft limit.
    over_soft_since: Option<std::time::Instant>,
}

/// One client's pending pushed messages, bounded in bytes.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    ready: Notify,
    cut: CancellationToken,
    limits: OutputLimits,
}

impl Outbox {
    pub fn new(limits: OutputLimits) -> Outbox {
        Outbox {
            state: Mutex::new(OutboxState::default()),
            ready: Notify::new(),
            cut: CancellationToken::new(),
            limits,
        }
    }

    fn state(&self) -> MutexGuard<'_, OutboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message without ever waiting. Past the limit the client is
    /// cut off: its queue is dropped and [`Outbox::cut`] fires.
    fn push(&self, delivery: Delivery) {
        if self.cut.is_cancelled() {
            return;
        }
        let size = delivery.size();
        let mut state = self.state();
        let after = state.bytes + size;
        let limits = &self.limits;
        // Redis checks the soft limit when output is added, and restarts
        // its clock once the buffer is back under it.
        let over_soft = limits.soft > 0 && after > limits.soft;
        if !over_soft {
            state.over_soft_since = None;
        }
        let soft_expired = over_soft && {
            let since = *state
                .over_soft_since
                .get_or_insert_with(std::time::Instant::now);
            since.elapsed() > limits.soft_for
        };
        let hard = limits.hard > 0 && after > limits.hard;
        if hard || soft_expired {
            state.queue.clear();
            state.bytes = 0;
            drop(state);
            let limit = if hard { "hard" } else { "soft" };
            metrics::counter!(CLIENTS_CUT_TOTAL, "limit" => limit).increment(1);
            tracing::debug!(limit, "pub/sub client over its output buffer limit");
            self.cut.cancel();
            return;
        }
        metrics::counter!(MESSAGES_TOTAL, "kind" => delivery.kind()).increment(1);
        state.bytes += size;
        state.queue.push_back(delivery);
        drop(state);
        self.ready.notify_one();
    }

    /// Completes when messages may be waiting (spurious wake-ups possible).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Fires when the client passed the output buffer limit.
    pub fn cut(&self) -> &CancellationToken {
        &self.cut
    }

    /// Encodes queued messages (up to about [`DRAIN_CHUNK`] bytes) into
    /// `out`; returns their accounted size, still counted until
    /// [`Outbox::written`] says the socket took them.
    pub fn drain_into(&self, out: &mut BytesMut, protocol: Protocol) -> usize {
        let mut taken = 0;
        let mut state = self.state();
        let more = loop {
            if taken >= DRAIN_CHUNK {
                break !state.queue.is_empty();
            }
            let Some(delivery) = state.queue.pop_front() else {
                break false;
            };
            taken += delivery.size();
            delivery.encode(out, protocol);
        };
        drop(state);
        if more {
            // Come back for the rest after this write.
            self.ready.notify_one();
        }
        taken
    }

    /// `bytes` taken by [`Outbox::drain_into`] were written.
    pub fn written(&self, bytes: usize) {
        if bytes > 0 {
            let mut state = self.state();
            state.bytes = state.bytes.saturating_sub(bytes);
        }
    }

    /// Bytes waiting (for `CLIENT LIST omem`).
    pub fn pending_bytes(&self) -> usize {
        self.state().bytes
    }
}

// ---------------------------------------------------------------------------
// The hub.

/// What a link to one node is doing, for SUBSCRIBE's wait and PUBLISH's
/// choice of node.
#[derive(Debug, Clone, Copy)]
struct LinkStatus {
    /// Since when the stream is established.
    up_since: Option<std::time::Instant>,
    /// An attempt to establish it is under way.
    connecting: bool,
    /// Highest interest version the node confirmed on this stream.
    acked: u64,
}

impl LinkStatus {
    fn up(&self) -> bool {
        self.up_since.is_some()
    }
}

struct Link {
    addr: String,
    endpoint: Endpoint,
    /// Made on first use: a tonic channel needs the runtime.
    channel: std::sync::OnceLock<Channel>,
    status: watch::Sender<LinkStatus>,
}

impl Link {
    fn client(&self) -> PubSubClient<Channel> {
        let channel = self
            .channel
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone();
        PubSubClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }
}

#[derive(Default)]
struct HubState {
    /// Per kind: name -> (client id -> outbox).
    subs: [HashMap<Bytes, HashMap<u64, Arc<Outbox>>>; 3],
    /// Bumped by every interest change.
    version: u64,
    /// Per link: where to send interest updates while it is attached.
    senders: Vec<Option<mpsc::UnboundedSender<PubSubInterest>>>,
    recent: HashSet<(u64, u64)>,
    recent_order: VecDeque<(u64, u64)>,
}

impl HubState {
    fn snapshot(&self) -> PubSubInterest {
        let mut items = Vec::new();
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for (name, clients) in &self.subs[kind.index()] {
                items.push(InterestCount {
                    kind: kind.pb() as i32,
                    name: name.to_vec(),
                    subscribers: u32::try_from(clients.len()).unwrap_or(u32::MAX),
                });
            }
        }
        PubSubInterest {
            reset: true,
            items,
            version: self.version,
        }
    }

    /// Sends an interest change to every attached link; returns its version.
    fn announce(&mut self, items: Vec<InterestCount>) -> Option<u64> {
        if items.is_empty() {
            return None;
        }
        self.version += 1;
        let update = PubSubInterest {
            reset: false,
            items,
            version: self.version,
        };
        for sender in self.senders.iter().flatten() {
            let _ = sender.send(update.clone());
        }
        Some(self.version)
    }

    /// False when (origin, seq) was seen recently (a retried publish).
    fn first_sighting(&mut self, id: (u64, u64)) -> bool {
        if !self.recent.insert(id) {
            return false;
        }
        self.recent_order.push_back(id);
        if self.recent_order.len() > RECENT_IDS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
        true
    }
}

/// The proxy's pub/sub hub (module docs).
pub struct PubSub {
    /// Random per process: the publisher part of message ids.
    origin: u64,
    seq: AtomicU64,
    output_limits: OutputLimits,
    deadline: Duration,
    links: Vec<Link>,
    /// The link PUBLISH used last (it keeps using it while it is up).
    last_used: std::sync::atomic::AtomicUsize,
    state: Mutex<HubState>,
}

impl PubSub {
    /// `nodes`: client addresses of the nodes; links start with
    /// [`PubSub::start`]. `deadline` bounds one PUBLISH over all nodes.
    pub fn new(
        nodes: &[String],
        output_limits: OutputLimits,
        deadline: Duration,
    ) -> Result<PubSub, ProxyError> {
        PubSub::with_tls(nodes, output_limits, deadline, None)
    }

    /// [`PubSub::new`] with the links dialled over mutual TLS when `tls`
    /// is set.
    pub fn with_tls(
        nodes: &[String],
        output_limits: OutputLimits,
        deadline: Duration,
        tls: Option<&ClusterTls>,
    ) -> Result<PubSub, ProxyError> {
        let mut links = Vec::with_capacity(nodes.len());
        for addr in nodes {
            let endpoint = cluster_tls::endpoint(tls, addr)
                .map_err(ProxyError::Config)?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                // A node that vanished without closing the connection
                // (power loss, partition) is noticed within seconds.
                .http2_keep_alive_interval(Duration::from_secs(2))
                .keep_alive_timeout(Duration::from_secs(3))
                .keep_alive_while_idle(true);
            links.push(Link {
                addr: addr.clone(),
                endpoint,
                channel: std::sync::OnceLock::new(),
                status: watch::channel(LinkStatus {
                    up_since: None,
                    connecting: false,
                    acked: 0,
                })
                .0,
            });
        }
        let state = HubState {
            senders: vec![None; links.len()],
            ..HubState::default()
        };
        Ok(PubSub {
            origin: rand::random(),
            seq: AtomicU64::new(0),
            output_limits,
            deadline,
            links,
            last_used: std::sync::atomic::AtomicUsize::new(0),
            state: Mutex::new(state),
        })
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts one link task per node; they stop with `stop`.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) {
        for index in 0..self.links.len() {
            // A SUBSCRIBE right after start waits for the first attempt.
            self.links[index]
                .status
                .send_modify(|s| s.connecting = true);
            tokio::spawn(run_link(self.clone(), index, stop.clone()));
        }
    }

    /// A new client's outbox, with the configured limits.
    pub fn outbox(&self) -> Arc<Outbox> {
        Arc::new(Outbox::new(self.output_limits))
    }

    /// Adds `client` to `names`; returns the interest version to wait for
    /// when the proxy's interest changed.
    fn add(&self, client: u64, outbox: &Arc<Outbox>, kind: Kind, names: &[Bytes]) -> Option<u64> {
        let mut state = self.state();
        let mut changes = Vec::new();
        for name in names {
            let clients = state.subs[kind.index()].entry(name.clone()).or_default();
            if clients.insert(client, outbox.clone()).is_none() {
                changes.push(InterestCount {
                    kind: kind.pb() as i32,
                    name: name.to_vec(),
                    subscribers: u32::try_from(clients.len()).unwrap_or(u32::MAX),
                });
            }
        }
        state.announce(changes)
    }

    /// Removes `client` from `names`.
    fn remove<'a>(
        &self,
        client: u64,
        kind: Kind,
        names: impl IntoIterator<Item = &'a Bytes>,
    ) -> Option<u64> {
        let mut state = self.state();
        let mut changes = Vec::new();
        for name in names {
            let map = &mut state.subs[kind.index()];
            let Some(clients) = map.get_mut(name) else {
                continue;
            };
            if clients.remove(&client).is_none() {
                continue;
            }
            let left = clients.len();
            if left == 0 {
                map.remove(name);
            }
            changes.push(InterestCount {
                kind: kind.pb() as i32,
                name: name.to_vec(),
                subscribers: u32::try_from(left).unwrap_or(u32::MAX),
            });
        }
        state.announce(changes)
    }

    /// Waits (bounded) until every established link confirmed `version`,
    /// so a message published after SUBSCRIBE answered reaches the client.
    async fn wait_applied(&self, version: u64) {
        let waits = self.links.iter().map(|link| {
            let mut rx = link.status.subscribe();
            async move {
                let _ = rx
                    .wait_for(|s| !s.connecting && (!s.up() || s.acked >= version))
                    .await;
            }
        });
        let _ = tokio::time::timeout(ACK_WAIT, futures::future::join_all(waits)).await;
    }

    /// Hands a message from a link to the matching local clients.
    fn deliver(&self, message: PublishedMessage) {
        let mut state = self.state();
        if !state.first_sighting((message.origin, message.seq)) {
            return;
        }
        let channel = Bytes::from(message.channel);
        let payload = Bytes::from(message.payload);
        if message.kind == PubSubKind::ShardChannel as i32 {
            if let Some(clients) = state.subs[Kind::Shard.index()].get(&channel) {
                for outbox in clients.values() {
                    outbox.push(Delivery::SMessage {
                        channel: channel.clone(),
                        payload: payload.clone(),
                    });
                }
            }
            return;
        }
        if let Some(clients) = state.subs[Kind::Channel.index()].get(&channel) {
            for outbox in clients.values() {
                outbox.push(Delivery::Message {
                    channel: channel.clone(),
                    payload: payload.clone(),
                });
            }
        }
        for (pattern, clients) in &state.subs[Kind::Pattern.index()] {
            if !glob_match(pattern, &channel) {
                continue;
            }
            for outbox in clients.values() {
                outbox.push(Delivery::PMessage {
                    pattern: pattern.clone(),
                    channel: channel.clone(),
                    payload: payload.clone(),
                });
            }
        }
    }

    /// Links in the order PUBLISH tries them: the one used last while it
    /// is up (so one proxy's publishes stay on one node, in order), then
    /// links up for a while (every other proxy has had time to link to
    /// them too), then links just up, then the rest; each group in
    /// `--nodes` order.
    fn preference(&self) -> Vec<usize> {
        let now = std::time::Instant::now();
        let rank = |i: usize| -> u8 {
            let status = *self.links[i].status.borrow();
            match status.up_since {
                Some(_) if i == self.last_used.load(Ordering::Relaxed) => 0,
                Some(since) if now.duration_since(since) >= SETTLE => 1,
                Some(_) => 2,
                None => 3,
            }
        };
        let mut order: Vec<(u8, usize)> = (0..self.links.len()).map(|i| (rank(i), i)).collect();
        order.sort_unstable();
        order.into_iter().map(|(_, i)| i).collect()
    }

    /// Publishes through one node (trying the next on failure); returns the
    /// number of subscriptions the message was sent to.
    pub async fn publish(
        &self,
        shard: bool,
        channel: Vec<u8>,
        payload: Vec<u8>,
    ) -> Result<i64, ProxyError> {
        let request = PublishRequest {
            message: Some(PublishedMessage {
                kind: if shard {
                    PubSubKind::ShardChannel
                } else {
                    PubSubKind::Channel
                } as i32,
                channel,
                payload,
                origin: self.origin,
                seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            }),
        };
        self.call_some_node(request, |mut client, request| async move {
            client
                .publish(request)
                .await
                .map(|r| r.into_inner().receivers)
        })
        .await
    }

    /// PUBSUB introspection, answered by one node for every linked proxy.
    pub async fn query(&self, query: PubSubQuery) -> Result<PubSubQueryResponse, ProxyError> {
        self.call_some_node(query, |mut client, query| async move {
            client.introspect(query).await.map(|r| r.into_inner())
        })
        .await
    }

    async fn call_some_node<Req, T, F, Fut>(&self, request: Req, call: F) -> Result<T, ProxyError>
    where
        Req: Clone,
        F: Fn(PubSubClient<Channel>, Req) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let give_up = Instant::now() + self.deadline;
        let mut backoff = FIRST_BACKOFF;
        loop {
            for index in self.preference() {
                let now = Instant::now();
                if now >= give_up {
                    return Err(ProxyError::ClusterDown(self.deadline));
                }
                let link = &self.links[index];
                let client = link.client();
                let bound = ATTEMPT_TIMEOUT.min(give_up - now);
                match tokio::time::timeout(bound, call(client, request.clone())).await {
                    Ok(Ok(value)) => {
                        self.last_used.store(index, Ordering::Relaxed);
                        return Ok(value);
                    }
                    Ok(Err(status)) => {
                        tracing::debug!(node = %link.addr, error = %status.message(), "pub/sub call failed")
                    }
                    Err(_) => tracing::debug!(node = %link.addr, "pub/sub call timed out"),
                }
            }
            let remaining = give_up.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ProxyError::ClusterDown(self.deadline));
            }
            tokio::time::sleep(backoff.min(remaining)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Local counts (tests and INFO): (channels, patterns, shard channels).
    pub fn local_counts(&self) -> (usize, usize, usize) {
        let state = self.state();
        (
            state.subs[0].len(),
            state.subs[1].len(),
            state.subs[2].len(),
        )
    }
}

/// Keeps the link to node `index` up: declares the interest, relays
/// messages to the hub, reconnects with backoff.
async fn run_link(hub: Arc<PubSub>, index: usize, stop: CancellationToken) {
    let link = &hub.links[index];
    let mut backoff = FIRST_BACKOFF;
    loop {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut state = hub.state();
            let _ = tx.send(state.snapshot());
            state.senders[index] = Some(tx);
        }
        let outbound = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|update| (update, rx))
        });
        let mut client = link.client();
        link.status.send_modify(|s| s.connecting = true);
        let opened = tokio::select! {
            opened = client.subscribe(outbound) => opened,
            () = stop.cancelled() => return detach(&hub, index),
        };
        match opened {
            Ok(response) => {
                let mut inbound = response.into_inner();
                link.status.send_modify(|s| {
                    s.up_since = Some(std::time::Instant::now());
                    s.connecting = false;
                    s.acked = 0;
                });
                tracing::info!(node = %link.addr, "pub/sub link up");
                backoff = FIRST_BACKOFF;
                loop {
                    let event = tokio::select! {
                        event = inbound.message() => event,
                        () = stop.cancelled() => return detach(&hub, index),
                    };
                    match event {
                        Ok(Some(event)) => match event.event {
                            Some(Event::Message(message)) => hub.deliver(message),
                            Some(Event::Ack(version)) => link.status.send_modify(|s| {
                                s.acked = s.acked.max(version);
                            }),
                            None => {}
                        },
                        Ok(None) => {
                            tracing::info!(node = %link.addr, "pub/sub link closed by the node");
                            break;
                        }
                        Err(status) => {
                            tracing::info!(node = %link.addr, error = %status.message(), "pub/sub link lost");
                            break;
                        }
                    }
                }
            }
            Err(status) => {
                tracing::debug!(node = %link.addr, error = %status.message(), "pub/sub link failed");
            }
        }
        detach(&hub, index);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn detach(hub: &PubSub, index: usize) {
    hub.state().senders[index] = None;
    hub.links[index].status.send_modify(|s| {
        s.up_since = None;
        s.connecting = false;
    });
}

// ---------------------------------------------------------------------------
// One connection's subscriptions.

/// The subscriptions of one client connection.
pub struct ClientPubSub {
    hub: Arc<PubSub>,
    handle: Arc<ClientHandle>,
    outbox: Arc<Outbox>,
    subs: [BTreeSet<Bytes>; 3],
    /// The interest version of the last removal, until the nodes confirm
    /// it ([`ClientPubSub::settle`]).
    unsettled: Option<u64>,
    /// Counted in [`SUBSCRIBED_CLIENTS`].
    counted: bool,
}

impl ClientPubSub {
    pub fn new(hub: Arc<PubSub>, handle: Arc<ClientHandle>) -> ClientPubSub {
        ClientPubSub {
            outbox: hub.outbox(),
            hub,
            handle,
            subs: Default::default(),
            unsettled: None,
            counted: false,
        }
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    pub fn hub(&self) -> &Arc<PubSub> {
        &self.hub
    }

    /// Channels + patterns (what SUBSCRIBE/PSUBSCRIBE replies count).
    pub fn count(&self) -> usize {
        self.subs[0].len() + self.subs[1].len()
    }

    /// Shard channels (what SSUBSCRIBE replies count).
    pub fn shard_count(&self) -> usize {
        self.subs[2].len()
    }

    /// In subscribed mode (RESP2 restricts the commands then).
    pub fn is_subscribed(&self) -> bool {
        self.count() + self.shard_count() > 0
    }

    /// The subscriptions of `kind`, in name order.
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        self.subs[kind.index()].iter().cloned().collect()
    }

    fn publish_counts(&mut self) {
        {
            let mut info = self.handle.info();
            info.sub = self.subs[0].len();
            info.psub = self.subs[1].len();
            info.ssub = self.subs[2].len();
        }
        let subscribed = self.is_subscribed();
        if subscribed != self.counted {
            self.counted = subscribed;
            let gauge = metrics::gauge!(SUBSCRIBED_CLIENTS);
            if subscribed {
                gauge.increment(1.0);
            } else {
                gauge.decrement(1.0);
            }
        }
    }

    /// Subscribes to `name`; true when it is new for this client.
    fn insert(&mut self, kind: Kind, name: &Bytes) -> bool {
        self.subs[kind.index()].insert(name.clone())
    }

    /// Subscribes to every name and waits until the nodes know; returns the
    /// confirmation items' counts, one per name.
    pub async fn subscribe(&mut self, kind: Kind, names: &[Bytes]) -> Vec<usize> {
        let mut counts = Vec::with_capacity(names.len());
        for name in names {
            self.insert(kind, name);
            counts.push(match kind {
                Kind::Shard => self.shard_count(),
                _ => self.count(),
            });
        }
        self.publish_counts();
        if let Some(version) = self.hub.add(self.handle.id, &self.outbox, kind, names) {
            self.hub.wait_applied(version).await;
        }
        counts
    }

    /// Unsubscribes from every name; returns the count after each one.
    pub fn unsubscribe(&mut self, kind: Kind, names: &[Bytes]) -> Vec<usize> {
        let mut counts = Vec::with_capacity(names.len());
        for name in names {
            self.subs[kind.index()].remove(name);
            counts.push(match kind {
                Kind::Shard => self.shard_count(),
                _ => self.count(),
            });
        }
        if let Some(version) = self.hub.remove(self.handle.id, kind, names) {
            self.unsettled = Some(version);
        }
        self.publish_counts();
        counts
    }

    /// Waits (bounded) until the nodes know about the last unsubscribe or
    /// RESET, so a PUBLISH after its reply no longer counts this client.
    pub async fn settle(&mut self) {
        if let Some(version) = self.unsettled.take() {
            self.hub.wait_applied(version).await;
        }
    }

    /// Drops every subscription without confirmations (RESET).
    pub fn clear(&mut self) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            let names = std::mem::take(&mut self.subs[kind.index()]);
            if let Some(version) = self.hub.remove(self.handle.id, kind, &names) {
                self.unsettled = Some(version);
            }
        }
        self.publish_counts();
    }
}

impl Drop for ClientPubSub {
    fn drop(&mut self) {
        if self.is_subscribed() {
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(limit: usize) -> Arc<PubSub> {
        Arc::new(
            PubSub::new(
                &["127.0.0.1:1".into()],
                OutputLimits::hard(limit),
                Duration::from_millis(100),
            )
            .unwrap(),
        )
    }

    fn message(kind: PubSubKind, channel: &str, payload: &str, seq: u64) -> PublishedMessage {
        PublishedMessage {
            kind: kind as i32,
            channel: channel.as_bytes().to_vec(),
            payload: payload.as_bytes().to_vec(),
            origin: 7,
            seq,
        }
    }

    fn drained(outbox: &Outbox, protocol: Protocol) -> String {
        let mut out = BytesMut::new();
        let n = outbox.drain_into(&mut out, protocol);
        outbox.written(n);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn push_encoding_follows_the_protocol() {
        let mut out = BytesMut::new();
        let items = [Item::Bulk(b"unsubscribe"), Item::Null, Item::Integer(0)];
        encode_push(&mut out, Protocol::Resp2, &items);
        encode_push(&mut out, Protocol::Resp3, &items);
        assert_eq!(
            &out[..],
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n>3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
        );
    }

    #[test]
    fn delivery_matches_channels_patterns_and_drops_copies() {
        let hub = hub(0);
        let a = hub.outbox();
        let b = hub.outbox();
        hub.add(1, &a, Kind::Channel, &[Bytes::from_static(b"news")]);
        hub.add(2, &b, Kind::Pattern, &[Bytes::from_static(b"n*")]);
        hub.add(2, &b, Kind::Shard, &[Bytes::from_static(b"news")]);
        hub.deliver(message(PubSubKind::Channel, "news", "hi", 1));
        // The same id again (a retried publish) is dropped.
        hub.deliver(message(PubSubKind::Channel, "news", "hi", 1));
        hub.deliver(message(PubSubKind::ShardChannel, "news", "sh", 2));
        assert_eq!(
            drained(&a, Protocol::Resp2),
            "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            drained(&b, Protocol::Resp3),
            ">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n>3\r\n$8\r\nsmessage\r\n$4\r\nnews\r\n$2\r\nsh\r\n"
        );
        assert_eq!(hub.local_counts(), (1, 1, 1));
        hub.remove(1, Kind::Channel, &[Bytes::from_static(b"news")]);
        assert_eq!(hub.local_counts(), (0, 1, 1));
    }

    #[test]
    fn a_full_outbox_cuts_the_client_off() {
        let hub = hub(200);
        let outbox = hub.outbox();
        hub.add(1, &outbox, Kind::Channel, &[Bytes::from_static(b"c")]);
        for seq in 1..=10 {
            hub.deliver(message(PubSubKind::Channel, "c", &"x".repeat(50), seq));
        }
        assert!(outbox.cut().is_cancelled());
        assert_eq!(outbox.pending_bytes(), 0);
    }

    #[test]
    fn the_soft_limit_cuts_only_after_its_seconds_and_restarts_below_it() {
        let soft = OutputLimits {
            hard: 0,
            soft: 100,
            soft_for: Duration::from_millis(200),
        };
        let msg = || Delivery::Message {
            channel: Bytes::from_static(b"c"),
            payload: Bytes::from(vec![b'x'; 40]),
        };
        let outbox = Outbox::new(soft);
        for _ in 0..5 {
            outbox.push(msg());
        }
        assert!(outbox.pending_bytes() > 100);
        assert!(!outbox.cut().is_cancelled(), "over soft, but not for long");
        // Back under the soft limit: the clock restarts.
        let mut out = BytesMut::new();
        let taken = outbox.drain_into(&mut out, Protocol::Resp2);
        outbox.written(taken);
        std::thread::sleep(Duration::from_millis(250));
        outbox.push(msg());
        assert!(!outbox.cut().is_cancelled());
        for _ in 0..4 {
            outbox.push(msg());
        }
        assert!(!outbox.cut().is_cancelled());
        std::thread::sleep(Duration::from_millis(250));
        outbox.push(msg());
        assert!(
            outbox.cut().is_cancelled(),
            "over soft for longer than its time"
        );
        assert_eq!(outbox.pending_bytes(), 0);
    }

    #[test]
    fn written_bytes_stay_counted_until_written() {
        let outbox = Outbox::new(OutputLimits::hard(0));
        outbox.push(Delivery::Message {
            channel: Bytes::from_static(b"c"),
            payload: Bytes::from_static(b"p"),
        });
        let before = outbox.pending_bytes();
        let mut out = BytesMut::new();
        let taken = outbox.drain_into(&mut out, Protocol::Resp2);
        assert_eq!(outbox.pending_bytes(), before);
        outbox.written(taken);
        assert_eq!(outbox.pending_bytes(), 0);
    }
}
