//! Metric names (all behind the `metrics` facade; the proxy's exporter
//! publishes them). Listed with their labels in `docs/policies.md`.
//!
//! Per-command handles are registered once, when a class table is built, so
//! the request path does no label allocation; install the recorder before
//! the policy is built (a reload re-registers them).

use metrics::{Counter, Histogram};

pub const COMMANDS_SUBMITTED: &str = "rampart_commands_submitted_total";
pub const COMMANDS_ADMITTED: &str = "rampart_commands_admitted_total";
pub const COMMANDS_REJECTED: &str = "rampart_commands_rejected_total";
pub const COMMAND_DURATION: &str = "rampart_command_duration_seconds";
pub const CLASS_IN_FLIGHT: &str = "rampart_class_in_flight";
pub const REQUESTS_IN_FLIGHT: &str = "rampart_requests_in_flight";
pub const INFLIGHT_WAITS: &str = "rampart_inflight_waits_total";
pub const CLASS_WAITS: &str = "rampart_class_waits_total";
pub const CONNECTIONS_ACCEPTED: &str = "rampart_connections_accepted_total";
pub const CONNECTIONS_REJECTED: &str = "rampart_connections_rejected_total";
pub const CONNECTIONS_OPEN: &str = "rampart_connections_open";
pub const CLIENT_IPS: &str = "rampart_client_ips";
pub const CLIENT_CONNECTIONS: &str = "rampart_client_connections";
pub const POLICY_RELOADS: &str = "rampart_policy_reloads_total";
pub const USER_CONNECTIONS_OPEN: &str = "rampart_user_connections_open";
pub const USER_LOGINS_REJECTED: &str = "rampart_user_logins_rejected_total";

/// Reasons in `rampart_commands_rejected_total{reason}`.
pub const REASON_CLASS_FULL: &str = "class_full";
pub const REASON_CLIENT_SHARE: &str = "client_share";
pub const REASON_CLIENT_TIME: &str = "client_time";

/// The handles for one (command, class) pair.
#[derive(Debug, Clone)]
pub struct CommandMetrics {
    pub submitted: Counter,
    pub admitted: Counter,
    pub rejected_class: Counter,
    pub rejected_share: Counter,
    pub rejected_time: Counter,
    pub duration: Histogram,
}

impl CommandMetrics {
    pub fn new(command: &'static str, class: &'static str) -> Self {
        CommandMetrics {
            submitted: metrics::counter!(COMMANDS_SUBMITTED, "command" => command, "class" => class),
            admitted: metrics::counter!(COMMANDS_ADMITTED, "command" => command, "class" => class),
            rejected_class: metrics::counter!(
                COMMANDS_REJECTED, "command" => command, "class" => class, "reason" => REASON_CLASS_FULL
            ),
            rejected_share: metrics::counter!(
                COMMANDS_REJECTED, "command" => command, "class" => class, "reason" => REASON_CLIENT_SHARE
            ),
            rejected_time: metrics::counter!(
                COMMANDS_REJECTED, "command" => command, "class" => class, "reason" => REASON_CLIENT_TIME
            ),
            duration: metrics::histogram!(COMMAND_DURATION, "command" => command, "class" => class),
        }
    }
}
