//! Where a reservation's latency goes: each hop of the synchronous path as its own server
//! measured it, read from the latency histograms the services export (the gateway's REST
//! request, reservation-svc's `CreateReservation`, product-svc's `ReserveProduct`). The
//! client's figure less the gateway's is time in the client and the gateway's HTTP server
//! before the route's middleware started; the gateway's less reservation-svc's is the
//! gateway's own work and the call; and so on down.
//!
//! The histograms' buckets are coarse (1, 2.5, 5, 10, 25, 50, 100 ms…): the percentiles are
//! interpolated inside a bucket, an estimate good for telling hops apart, not for budgets.

use crate::{Mesh, Svc};

/// One hop: which service's histogram, which series in it.
struct Hop {
    name: &'static str,
    svc: Svc,
    metric: &'static str,
    /// Label pairs a series must carry (`name="value"`, as exposed).
    labels: &'static [&'static str],
}

const HOPS: [Hop; 3] = [
    Hop {
        name: "gateway",
        svc: Svc::Gateway,
        metric: "http_server_request_duration_seconds_bucket",
        labels: &["method=\"POST\"", "route=\"/reservation\""],
    },
    Hop {
        name: "reservation",
        svc: Svc::Reservation,
        metric: "grpc_server_handling_seconds_bucket",
        labels: &["grpc_method=\"CreateReservation\""],
    },
    Hop {
        name: "product_lock",
        svc: Svc::Product,
        metric: "grpc_server_handling_seconds_bucket",
        labels: &["grpc_method=\"ReserveProduct\""],
    },
];

/// Every hop's cumulative bucket counts at one moment.
pub struct Snapshot(Vec<Vec<(f64, f64)>>);

/// Reads every hop's histogram now (a hop whose service cannot be read has no buckets).
pub async fn snapshot(mesh: &Mesh) -> Snapshot {
    let mut hops = Vec::with_capacity(HOPS.len());
    for hop in &HOPS {
        let text = match mesh.http.get(mesh.metrics_url(hop.svc)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        hops.push(buckets(&text, hop));
    }
    Snapshot(hops)
}

/// Prints `hop_<name>_p50_ms` and `hop_<name>_p99_ms` for what happened between the snapshots.
pub fn report(before: &Snapshot, after: &Snapshot) {
    for (n, hop) in HOPS.iter().enumerate() {
        let delta = difference(&before.0[n], &after.0[n]);
        for (label, quantile) in [("p50", 0.5), ("p99", 0.99)] {
            match estimate(&delta, quantile) {
                Some(seconds) => println!("hop_{}_{label}_ms={:.1}", hop.name, seconds * 1e3),
                None => println!("hop_{}_{label}_ms=unknown", hop.name),
            }
        }
    }
}

/// The `(upper bound, cumulative count)` buckets of `hop`'s series in an exposition, summed
/// over series that match (several status labels, say), sorted by bound.
fn buckets(exposition: &str, hop: &Hop) -> Vec<(f64, f64)> {
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(hop.metric) else {
            continue;
        };
        let Some((labels, count)) = rest.rsplit_once(' ') else {
            continue;
        };
        if !hop.labels.iter().all(|wanted| labels.contains(wanted)) {
            continue;
        }
        let (Some(bound), Ok(count)) = (upper_bound(labels), count.trim().parse::<f64>()) else {
            continue;
        };
        match sums.iter_mut().find(|(b, _)| same_bound(*b, bound)) {
            Some(bucket) => bucket.1 += count,
            None => sums.push((bound, count)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// Whether two bucket bounds are the same bucket: they were parsed from the same text, so
/// bit for bit (a difference would not do: infinity less infinity is not a number).
fn same_bound(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

/// The `le` label's value; `+Inf` is infinity.
fn upper_bound(labels: &str) -> Option<f64> {
    let start = labels.find("le=\"")? + 4;
    let end = start + labels[start..].find('"')?;
    match &labels[start..end] {
        "+Inf" => Some(f64::INFINITY),
        bound => bound.parse().ok(),
    }
}

/// Counts of `after` less `before`, bucket by bucket (a bucket missing before counted 0).
fn difference(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| same_bound(*b, bound))
                .map_or(0.0, |(_, c)| *c);
            (bound, count - earlier)
        })
        .collect()
}

/// The `quantile` of cumulative buckets, interpolated linearly inside its bucket (from 0 for
/// the first); `None` without observations, the last finite bound for the `+Inf` bucket.
fn estimate(buckets: &[(f64, f64)], quantile: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = quantile * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower);
            }
            let share = if count > below {
                (rank - below) / (count - below)
            } else {
                0.0
            };
            return Some(lower + (bound - lower) * share);
        }
        (lower, below) = (bound, count);
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "\
# TYPE grpc_server_handling_seconds histogram
grpc_server_handling_seconds_bucket{grpc_service=\"s\",grpc_method=\"ReserveProduct\",le=\"0.005\"} 50
grpc_server_handling_seconds_bucket{grpc_service=\"s\",grpc_method=\"ReserveProduct\",le=\"0.01\"} 90
grpc_server_handling_seconds_bucket{grpc_service=\"s\",grpc_method=\"ReserveProduct\",le=\"+Inf\"} 100
grpc_server_handling_seconds_bucket{grpc_service=\"s\",grpc_method=\"GetProduct\",le=\"0.005\"} 7
grpc_server_handling_seconds_bucket{grpc_service=\"s\",grpc_method=\"GetProduct\",le=\"+Inf\"} 7
";

    #[test]
    fn reads_only_the_hops_series_and_interpolates_inside_a_bucket() {
        let lock = &HOPS[2];
        let read = buckets(EXPOSITION, lock);
        assert_eq!(
            read,
            vec![(0.005, 50.0), (0.01, 90.0), (f64::INFINITY, 100.0)]
        );
        let median = estimate(&read, 0.5).unwrap();
        assert!((median - 0.005).abs() < 1e-9, "{median}");
        let p70 = estimate(&read, 0.7).unwrap();
        assert!((p70 - 0.0075).abs() < 1e-9, "{p70}");
        // Past the last finite bound: that bound, not infinity.
        assert!((estimate(&read, 0.99).unwrap() - 0.01).abs() < 1e-9);
    }

    #[test]
    fn a_difference_counts_only_what_happened_between_snapshots() {
        let before = vec![(0.005, 40.0), (0.01, 40.0), (f64::INFINITY, 40.0)];
        let after = vec![(0.005, 40.0), (0.01, 80.0), (f64::INFINITY, 80.0)];
        let delta = difference(&before, &after);
        // Every new observation fell between 5 and 10 ms.
        let median = estimate(&delta, 0.5).unwrap();
        assert!((median - 0.0075).abs() < 1e-9, "{median}");
        assert_eq!(estimate(&difference(&after, &after), 0.5), None);
    }
}
