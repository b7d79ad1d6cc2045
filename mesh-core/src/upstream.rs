//! A gRPC client's view of an upstream with several replicas: calls spread over every address
//! of every configured host, kept current as replicas come and go.
//!
//! Kubernetes balances *connections* to a ClusterIP Service, not calls: one HTTP/2 connection
//! carries every call of a client, so a client would stay on the first pod it reached and pods
//! added by the autoscaler would get nothing from it. Here a client is configured with one or
//! more URLs (`http://product-svc-headless:8081` or `http://10.0.0.1:8081,http://10.0.0.2:8081`);
//! a background task resolves each host to all of its addresses (a headless Service answers
//! with one address per ready pod) every refresh period and feeds the differences to tonic's
//! balancing channel, which connects to each address and sends each call to one of two ready
//! replicas picked at random (tower's power-of-two-choices balancer; tonic's connections
//! report equal load, so the pick is uniform among the ready ones, and a replica that is not
//! ready, still connecting or backed up, is passed over).
//!
//! An address that refuses a TCP connection at a refresh is left out until it accepts again,
//! so a killed replica stops receiving calls within one period even when its name still
//! resolves (a static list, or DNS not yet updated); if every address refuses, all are kept,
//! so callers get the real error at once instead of waiting for an endpoint. A name that fails
//! to resolve keeps the addresses it had: a DNS hiccup must not empty the channel.
//!
//! Deadlines, retries, shedding and breakers stay where they were, around the channel: a
//! retried call may go to another replica.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

use crate::config::ConfigError;

/// How often hosts are resolved again by default (`UPSTREAM_REFRESH_MS`).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// How long an address may take to accept a probing TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// One configured `scheme://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    scheme: String,
    host: String,
    port: u16,
}

/// The hosts a client balances over, parsed from a comma-separated list of URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTargets {
    targets: Vec<Target>,
}

impl UpstreamTargets {
    /// Parses `urls` (one URL, or several separated by commas); `setting` names the variable
    /// in the error. Every URL needs a scheme (`http`/`https`), a host and a port.
    pub fn parse(setting: &str, urls: &str) -> Result<Self, ConfigError> {
        let targets = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| parse_target(url).map_err(|reason| ConfigError::new(setting, urls, reason)))
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err(ConfigError::new(setting, urls, "no URL given"));
        }
        Ok(Self { targets })
    }

    /// The configured URLs, for logs.
    pub fn describe(&self) -> String {
        self.targets
            .iter()
            .map(|target| format!("{}://{}:{}", target.scheme, target.host, target.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn parse_target(url: &str) -> Result<Target, String> {
    let uri: http::Uri = url.parse().map_err(|err| format!("{url}: {err}"))?;
    let scheme = uri
        .scheme_str()
        .filter(|scheme| matches!(*scheme, "http" | "https"))
        .ok_or_else(|| format!("{url}: needs http:// or https://"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: needs a host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri
        .port_u16()
        .ok_or_else(|| format!("{url}: needs a port"))?;
    Ok(Target {
        scheme: scheme.to_owned(),
        host: host.to_owned(),
        port,
    })
}

/// A channel balancing calls over every address of `targets`, each connection configured by
/// `configure` (timeouts, nodelay). Must be called inside a Tokio runtime: it spawns the task
/// that resolves the hosts every `refresh`, which ends when the channel is dropped.
pub fn balanced_channel(
    targets: UpstreamTargets,
    configure: impl Fn(Endpoint) -> Endpoint + Send + 'static,
    refresh: Duration,
) -> Channel {
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    tokio::spawn(keep_resolving(targets, configure, changes, refresh));
    channel
}

/// Resolves every target each `refresh` and sends the balancer what changed.
async fn keep_resolving(
    targets: UpstreamTargets,
    configure: impl Fn(Endpoint) -> Endpoint,
    changes: Sender<Change<SocketAddr, Endpoint>>,
    refresh: Duration,
) {
    let mut resolved: Vec<BTreeSet<SocketAddr>> = vec![BTreeSet::new(); targets.targets.len()];
    let mut in_use = BTreeSet::new();
    loop {
        for (target, known) in targets.targets.iter().zip(resolved.iter_mut()) {
            let lookup = tokio::net::lookup_host((target.host.as_str(), target.port)).await;
            let lookup = lookup.map(Iterator::collect::<Vec<_>>);
            if let Err(err) = &lookup {
                tracing::warn!(host = %target.host, %err, "cannot resolve upstream; keeping its known addresses");
            }
            *known = still_known(known, lookup.ok());
        }
        let schemes: BTreeMap<SocketAddr, &str> = targets
            .targets
            .iter()
            .zip(&resolved)
            .flat_map(|(target, addrs)| addrs.iter().map(|addr| (*addr, target.scheme.as_str())))
            .collect();
        let reachable = reachable(schemes.keys().copied()).await;
        let wanted = addresses_to_use(schemes.keys().copied().collect(), &reachable);
        let (added, removed) = differences(&in_use, &wanted);
        for addr in removed {
            tracing::info!(%addr, "upstream address left the balancer");
            if changes.send(Change::Remove(addr)).await.is_err() {
                return; // the channel was dropped
            }
        }
        for addr in added {
            let endpoint = match Endpoint::from_shared(format!("{}://{addr}", schemes[&addr])) {
                Ok(endpoint) => configure(endpoint),
                Err(err) => {
                    tracing::warn!(%addr, %err, "cannot address upstream");
                    continue;
                }
            };
            tracing::info!(%addr, "upstream address joined the balancer");
            if changes.send(Change::Insert(addr, endpoint)).await.is_err() {
                return;
            }
        }
        in_use = wanted;
        tokio::select! {
            () = tokio::time::sleep(refresh) => {}
            () = changes.closed() => return,
        }
    }
}

/// The addresses a target keeps after a lookup: the new answer, or the old one when the
/// lookup failed or came back empty.
fn still_known(
    known: &BTreeSet<SocketAddr>,
    lookup: Option<Vec<SocketAddr>>,
) -> BTreeSet<SocketAddr> {
    match lookup {
        Some(addrs) if !addrs.is_empty() => addrs.into_iter().collect(),
        _ => known.clone(),
    }
}

/// The addresses that accept a TCP connection now.
async fn reachable(addrs: impl Iterator<Item = SocketAddr>) -> BTreeSet<SocketAddr> {
    let probes = addrs.map(|addr| async move {
        let connected =
            tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await;
        matches!(connected, Ok(Ok(_))).then_some(addr)
    });
    let mut up = BTreeSet::new();
    for probe in probes {
        up.extend(probe.await);
    }
    up
}

/// The reachable addresses, or all of them when none is reachable (callers then fail fast on
/// the real error rather than wait for an endpoint that may never come).
fn addresses_to_use(
    resolved: BTreeSet<SocketAddr>,
    reachable: &BTreeSet<SocketAddr>,
) -> BTreeSet<SocketAddr> {
    let up: BTreeSet<SocketAddr> = resolved.intersection(reachable).copied().collect();
    if up.is_empty() { resolved } else { up }
}

/// What joins and what leaves when the balancer goes from `current` to `wanted`.
fn differences(
    current: &BTreeSet<SocketAddr>,
    wanted: &BTreeSet<SocketAddr>,
) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    (
        wanted.difference(current).copied().collect(),
        current.difference(wanted).copied().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> BTreeSet<SocketAddr> {
        list.iter()
            .map(|addr| addr.parse().expect("an address"))
            .collect()
    }

    #[test]
    fn one_url_or_a_list() {
        let one =
            UpstreamTargets::parse("PRODUCT_SVC_URL", "http://product-svc:8081").expect("valid");
        assert_eq!(one.describe(), "http://product-svc:8081");
        let list =
            UpstreamTargets::parse("X", " http://10.0.0.1:1 , https://[::1]:2,").expect("valid");
        assert_eq!(list.describe(), "http://10.0.0.1:1,https://::1:2");
    }

    #[test]
    fn a_url_without_scheme_host_or_port_is_refused_with_its_setting_named() {
        for bad in [
            "",
            "product-svc:8081",
            "ftp://a:1",
            "http://a",
            "http://a:1,nonsense",
        ] {
            let err = UpstreamTargets::parse("PRODUCT_SVC_URL", bad).expect_err(bad);
            assert!(err.to_string().contains("PRODUCT_SVC_URL"), "{err}");
        }
    }

    #[test]
    fn a_failed_or_empty_lookup_keeps_what_was_known() {
        let known = addrs(&["10.0.0.1:1", "10.0.0.2:1"]);
        assert_eq!(still_known(&known, None), known);
        assert_eq!(still_known(&known, Some(vec![])), known);
        let fresh = vec!["10.0.0.3:1".parse().expect("an address")];
        assert_eq!(still_known(&known, Some(fresh)), addrs(&["10.0.0.3:1"]));
    }

    #[test]
    fn refusing_addresses_leave_unless_every_one_refuses() {
        let resolved = addrs(&["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]);
        let up = addrs(&["10.0.0.2:1"]);
        assert_eq!(addresses_to_use(resolved.clone(), &up), up);
        assert_eq!(
            addresses_to_use(resolved.clone(), &BTreeSet::new()),
            resolved
        );
    }

    #[test]
    fn differences_name_what_joins_and_what_leaves() {
        let current = addrs(&["10.0.0.1:1", "10.0.0.2:1"]);
        let wanted = addrs(&["10.0.0.2:1", "10.0.0.3:1"]);
        let (added, removed) = differences(&current, &wanted);
        assert_eq!(
            added,
            vec!["10.0.0.3:1".parse::<SocketAddr>().expect("an address")]
        );
        assert_eq!(
            removed,
            vec!["10.0.0.1:1".parse::<SocketAddr>().expect("an address")]
        );
    }

    /// Calls through the channel reach every replica of a list (real servers on loopback).
    #[tokio::test]
    async fn calls_spread_over_every_listed_replica() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;

        let mut urls = Vec::new();
        let mut counters = Vec::new();
        for _ in 0..3 {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            urls.push(format!("http://{}", listener.local_addr().expect("addr")));
            let calls = Arc::new(AtomicUsize::new(0));
            counters.push(calls.clone());
            let (_reporter, health) = tonic_health::server::health_reporter();
            let count = tower::util::MapRequestLayer::new(
                move |request: http::Request<tonic::body::Body>| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    request
                },
            );
            tokio::spawn(
                tonic::transport::Server::builder()
                    .layer(count)
                    .add_service(health)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
        }
        let targets = UpstreamTargets::parse("TEST_URL", &urls.join(",")).expect("valid");
        let channel = balanced_channel(targets, |endpoint| endpoint, Duration::from_millis(100));
        let mut client = HealthClient::new(channel);
        for _ in 0..300 {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            client.check(request).await.expect("a replica answers");
        }
        let shares: Vec<usize> = counters
            .iter()
            .map(|calls| calls.load(Ordering::Relaxed))
            .collect();
        assert_eq!(shares.iter().sum::<usize>(), 300);
        assert!(
            shares.iter().all(|calls| *calls >= 60),
            "every replica gets a fair share: {shares:?}"
        );
    }
}
