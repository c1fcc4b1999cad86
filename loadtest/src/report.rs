//! Latency recording (HdrHistogram), merging across connections, and the
//! two outputs: a plain table and JSON.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// Highest latency the histograms track (longer ones are clamped to it).
/// One histogram per connection and template is ~140 KB at this bound.
const MAX_LATENCY_US: u64 = 60 * 1_000_000;

/// A latency histogram in microseconds, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Error replies with one prefix.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ErrorCount {
    pub count: u64,
    /// The first full error text seen with this prefix.
    pub example: String,
}

/// What one command template (or everything) recorded.
#[derive(Clone, Debug)]
pub struct Recorder {
    pub hist: Histogram<u64>,
    pub ops: u64,
    pub errors: BTreeMap<String, ErrorCount>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            hist: new_histogram(),
            ops: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// One reply: its latency and, for an error reply, the error text.
    pub fn record(&mut self, latency: Duration, error: Option<&str>) {
        self.ops += 1;
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.hist.saturating_record(us);
        if let Some(text) = error {
            self.record_error(text);
        }
    }

    /// An error without a latency (e.g. a request lost with its connection).
    pub fn record_error(&mut self, text: &str) {
        let prefix = crate::conn::error_prefix(text);
        let entry = self.errors.entry(prefix.to_string()).or_default();
        if entry.count == 0 {
            entry.example = text.to_string();
        }
        entry.count += 1;
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.ops += other.ops;
        self.hist
            .add(&other.hist)
            .expect("histograms share their bounds");
        for (prefix, e) in &other.errors {
            let entry = self.errors.entry(prefix.clone()).or_default();
            if entry.count == 0 {
                entry.example = e.example.clone();
            }
            entry.count += e.count;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|e| e.count).sum()
    }

    /// The JSON/table summary over `elapsed` seconds.
    pub fn summary(&self, name: &str, weight: Option<u32>, elapsed: f64) -> Summary {
        Summary {
            command: name.to_string(),
            weight,
            ops: self.ops,
            ops_per_sec: if elapsed > 0.0 {
                self.ops as f64 / elapsed
            } else {
                0.0
            },
            errors: self.error_count(),
            errors_by_prefix: self.errors.clone(),
            latency_ms: Latency::of(&self.hist),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Replies received, error replies included.
    pub ops: u64,
    pub ops_per_sec: f64,
    /// Error replies plus requests lost with a broken connection.
    pub errors: u64,
    pub errors_by_prefix: BTreeMap<String, ErrorCount>,
    pub latency_ms: Latency,
}

/// Connection-level trouble during a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnectionErrors {
    /// Connection attempts that failed (refused, reset, timed out).
    pub connect_failures: u64,
    /// Established connections that broke (closed by the server, reset,
    /// reply timeout); each is reopened after a short pause.
    pub broken: u64,
    /// Requests that were in flight on a broken connection (counted as
    /// errors with prefix `IO`).
    pub lost_requests: u64,
    /// The first connection error seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// Settings echoed into the report.
#[derive(Clone, Debug, Serialize)]
pub struct RunSettings {
    pub endpoint: String,
    pub connections: usize,
    pub pipeline: usize,
    pub keyspace: u64,
    pub key_pattern: crate::workload::KeyPattern,
    pub value_size: usize,
    pub warmup_secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    pub source_ips: Vec<String>,
}

/// The result of one `bench` run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub settings: RunSettings,
    /// Length of the measured window (after warm-up) in seconds.
    pub elapsed_secs: f64,
    pub total: Summary,
    pub commands: Vec<Summary>,
    pub connection_errors: ConnectionErrors,
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl BenchReport {
    /// The human-readable table.
    pub fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        let s = &self.settings;
        let mut run = match (s.duration_secs, s.requests) {
            (_, Some(n)) => format!("{n} requests"),
            (Some(d), None) => format!("{d} s"),
            (None, None) => String::new(),
        };
        if s.warmup_secs > 0.0 {
            run.push_str(&format!(" after {} s warm-up", s.warmup_secs));
        }
        writeln!(
            out,
            "endpoint {}  connections {}  pipeline {}  keyspace {} ({})  value {} B  run {}{}",
            s.endpoint,
            s.connections,
            s.pipeline,
            s.keyspace,
            format!("{:?}", s.key_pattern).to_lowercase(),
            s.value_size,
            run,
            if s.source_ips.is_empty() {
                String::new()
            } else {
                format!("  from {}", s.source_ips.join(","))
            }
        )?;
        writeln!(out, "measured {:.2} s", self.elapsed_secs)?;
        writeln!(out)?;
        let width = self
            .commands
            .iter()
            .map(|c| c.command.len())
            .max()
            .unwrap_or(0)
            .clamp(7, 48);
        writeln!(
            out,
            "{:<width$}  {:>10}  {:>11}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
            "command", "ops", "ops/s", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        )?;
        let mut rows: Vec<&Summary> = self.commands.iter().collect();
        if self.commands.len() > 1 {
            rows.push(&self.total);
        }
        for r in rows {
            let mut name = r.command.clone();
            if name.len() > width {
                name.truncate(width - 1);
                name.push('~');
            }
            writeln!(
                out,
                "{:<width$}  {:>10}  {:>11.1}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
                name,
                r.ops,
                r.ops_per_sec,
                r.errors,
                fmt_ms(r.latency_ms.p50),
                fmt_ms(r.latency_ms.p90),
                fmt_ms(r.latency_ms.p99),
                fmt_ms(r.latency_ms.p999),
                fmt_ms(r.latency_ms.max),
            )?;
        }
        if !self.total.errors_by_prefix.is_empty() {
            writeln!(out)?;
            writeln!(out, "errors by prefix:")?;
            for (prefix, e) in &self.total.errors_by_prefix {
                writeln!(out, "  {prefix:<12} {:>10}  e.g. {:?}", e.count, e.example)?;
            }
        }
        let c = &self.connection_errors;
        if c.connect_failures + c.broken > 0 {
            writeln!(out)?;
            writeln!(
                out,
                "connections: {} failed attempts, {} broken, {} requests lost; first error: {}",
                c.connect_failures,
                c.broken,
                c.lost_requests,
                c.example.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_merges() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for i in 1..=100u64 {
            a.record(Duration::from_micros(i * 10), None);
        }
        b.record(
            Duration::from_millis(5),
            Some("BUSY heavy full retry after 2ms"),
        );
        b.record(Duration::from_millis(5), Some("BUSY other"));
        b.record(Duration::from_millis(5), Some("ERR syntax error"));
        a.merge(&b);
        assert_eq!(a.ops, 103);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.errors["BUSY"].count, 2);
        assert_eq!(a.errors["BUSY"].example, "BUSY heavy full retry after 2ms");
        let s = a.summary("x", None, 2.0);
        assert!((s.ops_per_sec - 51.5).abs() < 1e-9);
        assert!(
            (0.49..=0.52).contains(&s.latency_ms.p50),
            "{:?}",
            s.latency_ms
        );
        assert!(
            (4.99..=5.01).contains(&s.latency_ms.max),
            "{:?}",
            s.latency_ms
        );
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let s = Recorder::default().summary("x", Some(1), 0.0);
        assert_eq!(s.ops_per_sec, 0.0);
        assert_eq!(s.latency_ms.p99, 0.0);
    }
}
