//! The ordinary clients: a fixed total rate of GET/SET/INCR/small EVAL over
//! several connections and source addresses, for all three phases.
//!
//! Open loop: each connection has a schedule (one request every
//! `clients / rate` seconds) and sends whatever is due, pipelining when
//! replies are slow (up to `max_inflight`). A request's latency runs from
//! when it was written, except when the server held it back (the
//! connection had `max_inflight` unanswered requests, or was being
//! reopened): then from its *scheduled* time, so a stalled server shows up
//! as the delay every client would have seen instead of being hidden by
//! the generator waiting (coordinated omission). Timer lateness of the
//! generator itself (its runtime is shared with the abusive connections)
//! is not charged to the server. Each reply is attributed to the phase and
//! the second of its scheduled time.

use super::{Clock, Counters, PHASES};
use crate::conn::{ConnError, ConnectOptions, Login, Reply, RespConn};
use crate::report::{ConnectionErrors, Recorder};
use crate::workload::Mix;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// One second of the timeline.
#[derive(Clone, Debug)]
pub struct Second {
    /// Latencies in microseconds, 2 significant digits (auto-resizing, so
    /// a few hundred of them stay small).
    pub hist: Histogram<u64>,
    pub errors: u64,
}

impl Default for Second {
    fn default() -> Self {
        Second {
            hist: Histogram::new(2).expect("valid histogram"),
            errors: 0,
        }
    }
}

/// What one connection (or all, merged) recorded.
#[derive(Clone, Debug)]
pub struct CheapOutcome {
    /// `[phase][template]`.
    pub by_template: Vec<Vec<Recorder>>,
    pub seconds: Vec<Second>,
    /// Connection trouble per phase.
    pub conn_errors: Vec<ConnectionErrors>,
}

impl CheapOutcome {
    pub fn new(templates: usize, seconds: usize) -> CheapOutcome {
        CheapOutcome {
            by_template: vec![vec![Recorder::default(); templates]; PHASES],
            seconds: vec![Second::default(); seconds],
            conn_errors: vec![ConnectionErrors::default(); PHASES],
        }
    }

    pub fn merge(&mut self, other: &CheapOutcome) {
        for (mine, theirs) in self.by_template.iter_mut().zip(&other.by_template) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                a.merge(b);
            }
        }
        for (a, b) in self.seconds.iter_mut().zip(&other.seconds) {
            a.hist.add(&b.hist).expect("auto-resizing histogram");
            a.errors += b.errors;
        }
        for (a, b) in self.conn_errors.iter_mut().zip(&other.conn_errors) {
            a.connect_failures += b.connect_failures;
            a.broken += b.broken;
            a.lost_requests += b.lost_requests;
            if a.example.is_none() {
                a.example.clone_from(&b.example);
            }
        }
    }

    fn record(&mut self, clock: &Clock, req: Request, error: Option<&str>) {
        let Request {
            scheduled,
            start,
            template,
        } = req;
        let phase = clock.phase_of(scheduled);
        let latency = Instant::now().saturating_duration_since(start);
        self.by_template[phase][template].record(latency, error);
        if let Some(s) = self.seconds.get_mut(clock.second_of(scheduled)) {
            // `record`, not `saturating_record`: the latter clamps to the
            // current top instead of growing an auto-resizing histogram.
            let _ = s.hist.record((latency.as_micros() as u64).max(1));
            if error.is_some() {
                s.errors += 1;
            }
        }
    }

    /// A request that got no reply (connection lost or never opened).
    fn lost(&mut self, clock: &Clock, scheduled: Instant, template: usize, text: &str) {
        let phase = clock.phase_of(scheduled);
        self.by_template[phase][template].record_error(text);
        self.conn_errors[phase].lost_requests += 1;
        if let Some(s) = self.seconds.get_mut(clock.second_of(scheduled)) {
            s.errors += 1;
        }
    }
}

/// One request in flight.
#[derive(Clone, Copy, Debug)]
struct Request {
    /// Where the schedule put it (phase and second attribution).
    scheduled: Instant,
    /// Where its latency starts (see the module doc).
    start: Instant,
    template: usize,
}

pub struct CheapClient {
    pub connect: ConnectOptions,
    /// Log in as this ACL user (else `connect`'s password, if any).
    pub login: Option<Login>,
    pub mix: Arc<Mix>,
    pub rng: StdRng,
    pub clock: Clock,
    /// Time between two requests of this connection.
    pub interval: Duration,
    /// This connection's first scheduled request.
    pub first: Instant,
    pub max_inflight: usize,
    pub reply_timeout: Duration,
    pub counters: Arc<Counters>,
}

impl CheapClient {
    pub async fn run(mut self) -> CheapOutcome {
        let mut out = CheapOutcome::new(self.mix.templates.len(), self.clock.seconds());
        let end = self.clock.end();
        let mut next_due = self.first;
        let mut inflight: VecDeque<Request> = VecDeque::new();
        // Due requests were held back by the server (in-flight cap or a
        // reconnect) and are measured from their scheduled time.
        let mut held_back = false;
        let mut conn: Option<RespConn> = None;
        // When the oldest unanswered request was written or a reply last
        // arrived: no progress for `reply_timeout` breaks the connection.
        let mut progress_at = Instant::now();
        tokio::time::sleep_until(self.first.into()).await;
        loop {
            if conn.is_none() {
                if Instant::now() >= end {
                    break;
                }
                match RespConn::connect_as(&self.connect, self.login.as_ref()).await {
                    Ok(c) => {
                        conn = Some(c);
                        held_back = true;
                    }
                    Err(e) => {
                        self.connect_failed(&mut out, &e, &mut next_due);
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                        continue;
                    }
                }
            }
            let c = conn.as_mut().expect("connected above");
            let now = Instant::now();
            while next_due <= now && next_due < end && inflight.len() < self.max_inflight {
                let t = self.mix.encode_next(c.wbuf(), &mut self.rng);
                if inflight.is_empty() {
                    progress_at = now;
                }
                inflight.push_back(Request {
                    scheduled: next_due,
                    start: if held_back { next_due } else { now },
                    template: t,
                });
                next_due += self.interval;
            }
            // Still something due: the in-flight cap stopped us.
            held_back = next_due <= now && next_due < end;
            if next_due >= end && inflight.is_empty() {
                break;
            }
            let mut result = c.flush().await;
            if result.is_ok() {
                let sending = next_due < end && inflight.len() < self.max_inflight;
                result = if inflight.is_empty() {
                    tokio::time::sleep_until(next_due.into()).await;
                    Ok(())
                } else {
                    let stall = progress_at + self.reply_timeout;
                    let wake = if sending { next_due.min(stall) } else { stall };
                    match tokio::time::timeout_at(wake.into(), c.read_more(self.reply_timeout))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) if Instant::now() >= stall => {
                            Err(ConnError::ReplyTimeout(self.reply_timeout))
                        }
                        Err(_) => Ok(()),
                    }
                };
            }
            if result.is_ok() {
                result = self.take_replies(c, &mut out, &mut inflight, &mut progress_at);
            }
            if let Err(e) = result {
                let phase = self.clock.phase_of(Instant::now().min(end));
                out.conn_errors[phase].broken += 1;
                out.conn_errors[phase]
                    .example
                    .get_or_insert_with(|| e.to_string());
                let text = format!("IO {e}");
                for req in inflight.drain(..) {
                    out.lost(&self.clock, req.scheduled, req.template, &text);
                    self.counters.cheap_errors.fetch_add(1, Ordering::Relaxed);
                }
                conn = None;
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
        out
    }

    fn take_replies(
        &self,
        c: &mut RespConn,
        out: &mut CheapOutcome,
        inflight: &mut VecDeque<Request>,
        progress_at: &mut Instant,
    ) -> Result<(), ConnError> {
        while let Some(reply) = c.try_next_reply()? {
            let req = inflight
                .pop_front()
                .ok_or_else(|| ConnError::Protocol("a reply nobody asked for".into()))?;
            *progress_at = Instant::now();
            let error = match &reply {
                Reply::Ok => None,
                Reply::Error(text) => Some(text.as_str()),
            };
            out.record(&self.clock, req, error);
            self.counters.cheap_ops.fetch_add(1, Ordering::Relaxed);
            if error.is_some() {
                self.counters.cheap_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Requests that fell due while no connection could be opened are
    /// errors: the client would have failed them.
    fn connect_failed(&mut self, out: &mut CheapOutcome, e: &ConnError, next_due: &mut Instant) {
        let now = Instant::now();
        let phase = self.clock.phase_of(now.min(self.clock.end()));
        out.conn_errors[phase].connect_failures += 1;
        out.conn_errors[phase]
            .example
            .get_or_insert_with(|| e.to_string());
        let text = format!("IO {e}");
        while *next_due <= now && *next_due < self.clock.end() {
            let t = self.mix.pick(&mut self.rng);
            out.lost(&self.clock, *next_due, t, &text);
            self.counters.cheap_errors.fetch_add(1, Ordering::Relaxed);
            *next_due += self.interval;
        }
    }
}
