//! Every metric the shared parts of the mesh export (gRPC and REST serving, outbox, consumers,
//! database pool): name, labels and meaning, in one place. A service's own metrics live with
//! it (reservation-svc's `lock_metrics` for the product lock and its breaker).
//!
//! The names follow Prometheus conventions (base units, `_total` counters); a test scrapes
//! every binary and checks that each metric a Grafana dashboard under
//! `helm/reserve-mesh/dashboards/` queries is exported.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// gRPC calls served, by `grpc_service`, `grpc_method` and `grpc_code` (RED: rate and errors).
pub const GRPC_HANDLED: &str = "grpc_server_handled_total";
/// gRPC call latency, by `grpc_service` and `grpc_method` (RED: duration).
pub const GRPC_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
/// REST requests answered by the gateway, by `method`, `route` and `status`.
pub const HTTP_REQUESTS: &str = "http_server_requests_total";
/// REST request latency, by `method` and `route`.
pub const HTTP_REQUEST_SECONDS: &str = "http_server_request_duration_seconds";
/// REST requests refused at once because the gateway's in-flight bound was reached.
pub const HTTP_SHED: &str = "http_server_shed_total";
/// REST requests the gateway is answering now, counted against its in-flight bound.
pub const HTTP_IN_FLIGHT: &str = "http_server_requests_in_flight";
/// Outbox rows not yet published.
pub const OUTBOX_BACKLOG: &str = "outbox_backlog";
/// Outbox rows published to JetStream (and acknowledged by it).
pub const OUTBOX_PUBLISHED: &str = "outbox_published_total";
/// Failed outbox publish attempts (NATS down or not acknowledging).
pub const OUTBOX_PUBLISH_FAILURES: &str = "outbox_publish_failures_total";
/// Time from an outbox row's commit to JetStream's acknowledgement of its event.
pub const OUTBOX_RELAY_LAG_SECONDS: &str = "outbox_relay_lag_seconds";
/// Events delivered to a consumer, by `consumer` and `outcome` (`applied`, `duplicate`,
/// `retry`, `dead_lettered`).
pub const CONSUMER_EVENTS: &str = "consumer_events_total";
/// Deliveries that were not the first for their event, by `consumer`.
pub const CONSUMER_REDELIVERIES: &str = "consumer_redeliveries_total";
/// Events sent to the dead-letter stream, by `consumer`.
pub const CONSUMER_DEAD_LETTERS: &str = "consumer_dead_letters_total";
/// Events still waiting for a consumer (undelivered plus delivered and not yet acked), as of
/// its last delivery or its watchdog's last look (every few seconds), by `consumer`.
pub const CONSUMER_LAG: &str = "consumer_lag_messages";
/// Age of an event when a consumer applied it, or failed to and will retry it, by `consumer`.
pub const CONSUMER_EVENT_AGE_SECONDS: &str = "consumer_event_age_seconds";
/// Times a consumer's subscription went quiet while events waited and was made anew.
pub const CONSUMER_STALLS: &str = "consumer_stalls_total";
/// Database pool connections, by `state` (`in_use`, `idle`).
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// Commits of grouped transactions ([`crate::group_commit`]).
pub const DB_GROUP_COMMITS: &str = "db_group_commits_total";
/// Transactions those commits carried: divided by the commits, the sharing the load allowed.
pub const DB_GROUP_COMMIT_MEMBERS: &str = "db_group_commit_members_total";
/// Histogram buckets (seconds) for every latency: 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// Registers help text for every metric (Prometheus `# HELP`; `promtool check metrics` wants it).
pub fn describe() {
    describe_counter!(
        GRPC_HANDLED,
        "gRPC calls served, by method and status code."
    );
    describe_histogram!(GRPC_HANDLING_SECONDS, Unit::Seconds, "gRPC call latency.");
    describe_counter!(
        HTTP_REQUESTS,
        "REST requests answered, by route and HTTP status."
    );
    describe_histogram!(HTTP_REQUEST_SECONDS, Unit::Seconds, "REST request latency.");
    describe_counter!(
        HTTP_SHED,
        "REST requests refused because the in-flight bound was reached."
    );
    describe_gauge!(
        HTTP_IN_FLIGHT,
        "REST requests being answered, counted against the in-flight bound."
    );
    describe_gauge!(OUTBOX_BACKLOG, "Outbox rows not yet published.");
    describe_counter!(
        OUTBOX_PUBLISHED,
        "Outbox events published and acknowledged by JetStream."
    );
    describe_counter!(OUTBOX_PUBLISH_FAILURES, "Failed outbox publish attempts.");
    describe_histogram!(
        OUTBOX_RELAY_LAG_SECONDS,
        Unit::Seconds,
        "Time from an outbox row's commit to JetStream's acknowledgement."
    );
    describe_counter!(
        CONSUMER_EVENTS,
        "Events delivered to a consumer, by outcome."
    );
    describe_counter!(
        CONSUMER_REDELIVERIES,
        "Repeated deliveries of an event to a consumer."
    );
    describe_counter!(
        CONSUMER_DEAD_LETTERS,
        "Events sent to the dead-letter stream."
    );
    describe_gauge!(CONSUMER_LAG, "Events waiting in the stream for a consumer.");
    describe_histogram!(
        CONSUMER_EVENT_AGE_SECONDS,
        Unit::Seconds,
        "Age of an event when a consumer applied it or failed to and will retry."
    );
    describe_counter!(
        CONSUMER_STALLS,
        "Consumer subscriptions that went quiet while events waited and were made anew."
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections, by state.");
    describe_counter!(DB_GROUP_COMMITS, "Commits of grouped transactions.");
    describe_counter!(
        DB_GROUP_COMMIT_MEMBERS,
        "Transactions carried by grouped commits."
    );
}
