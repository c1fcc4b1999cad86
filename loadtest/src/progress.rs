//! The progress bar (indicatif, on stderr). Hidden with `--quiet` and when
//! stderr is not a terminal, so logs and CI output only get the final table.

use crate::bench::{ProgressSource, StopAt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(250);

/// A bar for a run of known length, or a hidden one.
pub fn bar(quiet: bool, len: u64, template: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(template)
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    pb
}

/// The `bench` progress bar and the task that updates it.
pub struct Progress {
    bar: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts updating a bar every 250 ms: by time for `--duration`, by
    /// completed requests for `--requests`.
    pub fn start(
        quiet: bool,
        stop: StopAt,
        warmup: Duration,
        start: Instant,
        source: Arc<dyn ProgressSource>,
    ) -> Progress {
        let (len, by_time) = match stop {
            StopAt::Duration(d) => ((warmup + d).as_millis() as u64, true),
            StopAt::Requests(n) => (n, false),
        };
        let pb = bar(quiet, len.max(1), "[{elapsed_precise}] [{bar:40}] {msg}");
        if pb.is_hidden() {
            return Progress {
                bar: pb,
                ticker: None,
            };
        }
        let handle = pb.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            let mut last = (Instant::now(), 0u64);
            loop {
                interval.tick().await;
                let now = Instant::now();
                let done = source.completed();
                let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
                last = (now, done);
                let since = now.saturating_duration_since(start);
                if by_time {
                    handle.set_position(since.as_millis() as u64);
                } else {
                    handle.set_position(done);
                }
                if since < warmup {
                    handle.set_message("warming up");
                } else {
                    handle.set_message(format!(
                        "{done} ops  {rate:.0} ops/s  {} errors",
                        source.errors()
                    ));
                }
            }
        });
        Progress {
            bar: pb,
            ticker: Some(ticker),
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}
