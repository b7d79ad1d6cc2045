//! The invariants of a chaos run, read from each service's own database (never through the
//! services, which could hide a disagreement): no double reservation, every lock held by a
//! live reservation and the other way round, one payment per reservation in the matching
//! state, my page equal to the sources row by row, one notice per status change, no dead
//! letter, and every 2xx a client saw reflected in the final state.
//!
//! Over 400 lines only with its unit tests beside it: each invariant is checked against a small
//! hand-made snapshot that breaks it.

use std::collections::{BTreeMap, BTreeSet};

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

use super::buyers::Evidence;
use crate::{Mesh, Svc};

#[derive(QueryableByName)]
struct Product {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    reservation_id: Option<i64>,
}

#[derive(QueryableByName)]
struct Reservation {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    product_id: i64,
    #[diesel(sql_type = Text)]
    status: String,
}

#[derive(QueryableByName)]
struct Payment {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    reservation_id: i64,
    #[diesel(sql_type = Text)]
    status: String,
}

#[derive(QueryableByName)]
struct PageRow {
    #[diesel(sql_type = BigInt)]
    reservation_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    reservation_status: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    payment_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    payment_status: Option<String>,
}

#[derive(QueryableByName)]
struct Notice {
    #[diesel(sql_type = BigInt)]
    reservation_id: i64,
    #[diesel(sql_type = Text)]
    event_type: String,
}

/// Everything the check reads.
struct Snapshot {
    products: Vec<Product>,
    reservations: Vec<Reservation>,
    payments: Vec<Payment>,
    page: Vec<PageRow>,
    notices: Vec<Notice>,
}

fn read<T: QueryableByName<diesel::pg::Pg> + 'static>(
    url: &str,
    query: &str,
) -> Result<Vec<T>, String> {
    let mut conn = PgConnection::establish(url).map_err(|err| err.to_string())?;
    diesel::sql_query(query)
        .load(&mut conn)
        .map_err(|err| err.to_string())
}

fn snapshot(urls: BTreeMap<Svc, String>) -> Result<Snapshot, String> {
    let url = |svc: Svc| {
        urls.get(&svc)
            .cloned()
            .ok_or(format!("{svc:?} has no database"))
    };
    Ok(Snapshot {
        products: read(
            &url(Svc::Product)?,
            "SELECT id, status, reservation_id FROM products",
        )?,
        reservations: read(
            &url(Svc::Reservation)?,
            "SELECT id, product_id, status FROM reservations",
        )?,
        payments: read(
            &url(Svc::Payment)?,
            "SELECT id, reservation_id, status FROM payments",
        )?,
        page: read(
            &url(Svc::MyPage)?,
            "SELECT reservation_id, reservation_status, payment_id, payment_status FROM my_page",
        )?,
        notices: read(
            &url(Svc::Notice)?,
            "SELECT reservation_id, event_type FROM notices",
        )?,
    })
}

/// Every invariant broken now, in words (empty when all hold).
pub(super) async fn check(mesh: &Mesh, evidence: &[Evidence]) -> Vec<String> {
    let urls: BTreeMap<Svc, String> = super::Target::SERVICES
        .into_iter()
        .filter_map(|svc| mesh.database_url(svc).map(|url| (svc, url)))
        .collect();
    let snapshot = match tokio::task::spawn_blocking(move || snapshot(urls)).await {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(err)) => return vec![format!("cannot read the databases: {err}")],
        Err(err) => return vec![format!("cannot read the databases: {err}")],
    };
    let mut violations = violations(&snapshot, evidence);
    match dead_letters(mesh).await {
        Ok(0) => {}
        Ok(count) => violations.push(format!("{count} dead letters in RESERVE_DLQ")),
        Err(err) => violations.push(format!("cannot read the dead letters: {err}")),
    }
    violations
}

async fn dead_letters(mesh: &Mesh) -> Result<usize, String> {
    let js = mesh_core::events::connect(&mesh.nats.url, "chaos-check")
        .await
        .map_err(|err| err.to_string())?;
    let everything = mesh_core::dead_letters::Selection::default();
    let list = mesh_core::dead_letters::list(&js, &everything);
    match tokio::time::timeout(std::time::Duration::from_secs(10), list).await {
        Ok(Ok(letters)) => Ok(letters.len()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("NATS did not answer".into()),
    }
}

fn violations(s: &Snapshot, evidence: &[Evidence]) -> Vec<String> {
    let checked = Indexed::new(s);
    let mut out = Vec::new();
    checked.intents_settled(&mut out);
    checked.one_live_reservation_per_product(&mut out);
    checked.held_products_match_their_holders(&mut out);
    checked.reservations_match_products_and_payments(&mut out);
    checked.payments_have_reservations(&mut out);
    checked.my_page_equals_the_sources(&mut out);
    checked.one_notice_per_status_change(&mut out);
    checked.every_success_seen_is_final(evidence, &mut out);
    out
}

/// The snapshot with the lookups every check needs; each check appends what it finds wrong.
struct Indexed<'a> {
    s: &'a Snapshot,
    products: BTreeMap<i64, &'a Product>,
    /// Reservations in a final state (intents excluded), by id.
    reservations: BTreeMap<i64, &'a Reservation>,
    /// Payments by their reservation.
    payments: BTreeMap<i64, &'a Payment>,
}

impl<'a> Indexed<'a> {
    fn new(s: &'a Snapshot) -> Self {
        Self {
            s,
            products: s.products.iter().map(|p| (p.id, p)).collect(),
            reservations: s
                .reservations
                .iter()
                .filter(|r| matches!(r.status.as_str(), "RESERVED" | "CONFIRMED" | "CANCELLED"))
                .map(|r| (r.id, r))
                .collect(),
            payments: s.payments.iter().map(|p| (p.reservation_id, p)).collect(),
        }
    }

    /// Intents are settled: the reconciler released every abandoned lock.
    fn intents_settled(&self, out: &mut Vec<String>) {
        for r in self
            .s
            .reservations
            .iter()
            .filter(|r| !self.reservations.contains_key(&r.id))
        {
            out.push(format!(
                "reservation {} is still an intent ({})",
                r.id, r.status
            ));
        }
    }

    /// I1: at most one live reservation per product.
    fn one_live_reservation_per_product(&self, out: &mut Vec<String>) {
        let mut live_per_product: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for r in self
            .reservations
            .values()
            .filter(|r| r.status != "CANCELLED")
        {
            live_per_product.entry(r.product_id).or_default().push(r.id);
        }
        for (product, live) in &live_per_product {
            if live.len() > 1 {
                out.push(format!(
                    "product {product} has {} live reservations {live:?}",
                    live.len()
                ));
            }
        }
    }

    /// Every held product is held by exactly its one live reservation, in the matching state.
    fn held_products_match_their_holders(&self, out: &mut Vec<String>) {
        for p in &self.s.products {
            let expected = match p.status.as_str() {
                "PENDING" => "RESERVED",
                "SOLD_OUT" => "CONFIRMED",
                _ => continue,
            };
            match p.reservation_id.and_then(|r| self.reservations.get(&r)) {
                Some(r) if r.status == expected && r.product_id == p.id => {}
                Some(r) => out.push(format!(
                    "product {} is {} for reservation {} which is {} (for product {})",
                    p.id, p.status, r.id, r.status, r.product_id
                )),
                None => out.push(format!(
                    "product {} is {} for reservation {:?}, which does not exist",
                    p.id, p.status, p.reservation_id
                )),
            }
        }
    }

    /// Each reservation holds its product as its state says, and has one payment in the matching state.
    fn reservations_match_products_and_payments(&self, out: &mut Vec<String>) {
        for r in self.reservations.values() {
            let product = self.products.get(&r.product_id);
            let holds = product.is_some_and(|p| p.reservation_id == Some(r.id));
            let wanted = match r.status.as_str() {
                "RESERVED" => Some("PENDING"),
                "CONFIRMED" => Some("SOLD_OUT"),
                _ => None,
            };
            match (wanted, product) {
                (Some(status), Some(p)) if !(holds && p.status == status) => out.push(format!(
                    "reservation {} is {} but product {} is {} for {:?}",
                    r.id, r.status, p.id, p.status, p.reservation_id
                )),
                (Some(_), None) => out.push(format!(
                    "reservation {} names missing product {}",
                    r.id, r.product_id
                )),
                (None, Some(p)) if holds => out.push(format!(
                    "cancelled reservation {} still holds product {} ({})",
                    r.id, p.id, p.status
                )),
                _ => {}
            }
            // One payment, in the state that matches.
            match self.payments.get(&r.id) {
                None => out.push(format!(
                    "reservation {} ({}) has no payment",
                    r.id, r.status
                )),
                Some(pay) => {
                    let fits = match r.status.as_str() {
                        "RESERVED" => pay.status == "UNPAID",
                        "CONFIRMED" => pay.status == "PAID",
                        _ => matches!(pay.status.as_str(), "VOIDED" | "REFUNDED"),
                    };
                    if !fits {
                        out.push(format!(
                            "reservation {} is {} but its payment {} is {}",
                            r.id, r.status, pay.id, pay.status
                        ));
                    }
                }
            }
        }
    }

    /// No payment without its reservation.
    fn payments_have_reservations(&self, out: &mut Vec<String>) {
        for pay in &self.s.payments {
            if !self.reservations.contains_key(&pay.reservation_id) {
                out.push(format!(
                    "payment {} is for unknown reservation {}",
                    pay.id, pay.reservation_id
                ));
            }
        }
    }

    /// My page equals the sources, row by row.
    fn my_page_equals_the_sources(&self, out: &mut Vec<String>) {
        let page: BTreeMap<i64, &PageRow> = self
            .s
            .page
            .iter()
            .map(|row| (row.reservation_id, row))
            .collect();
        for r in self.reservations.values() {
            let pay = self.payments.get(&r.id);
            match page.get(&r.id) {
                None => out.push(format!("my page has no row for reservation {}", r.id)),
                Some(row) => {
                    let same = row.reservation_status.as_deref() == Some(r.status.as_str())
                        && row.payment_id == pay.map(|p| p.id)
                        && row.payment_status.as_deref() == pay.map(|p| p.status.as_str());
                    if !same {
                        out.push(format!(
                            "my page row {} shows {:?}/{:?} {:?}, sources say {}/{:?} {:?}",
                            r.id,
                            row.reservation_status,
                            row.payment_id,
                            row.payment_status,
                            r.status,
                            pay.map(|p| p.id),
                            pay.map(|p| p.status.as_str())
                        ));
                    }
                }
            }
        }
        for row in &self.s.page {
            if !self.reservations.contains_key(&row.reservation_id) {
                out.push(format!(
                    "my page shows unknown reservation {}",
                    row.reservation_id
                ));
            }
        }
    }

    /// One notice per status change: none twice, and the final states' are there.
    fn one_notice_per_status_change(&self, out: &mut Vec<String>) {
        let mut notices: BTreeMap<(i64, &str), usize> = BTreeMap::new();
        for notice in &self.s.notices {
            *notices
                .entry((notice.reservation_id, notice.event_type.as_str()))
                .or_default() += 1;
        }
        for ((reservation, event), count) in &notices {
            if *count > 1 {
                out.push(format!(
                    "{count} notices of {event} for reservation {reservation}"
                ));
            }
        }
        for r in self.reservations.values() {
            let mut wanted = BTreeSet::from(["ReservationPlaced"]);
            match r.status.as_str() {
                "CANCELLED" => wanted.insert("ReservationCancelled"),
                "CONFIRMED" => wanted.insert("ReservationConfirmed"),
                _ => false,
            };
            match self.payments.get(&r.id).map(|p| p.status.as_str()) {
                Some("UNPAID") => wanted.insert("PaymentRequested"),
                Some("PAID") => wanted.insert("PaymentCompleted"),
                Some("VOIDED") => wanted.insert("PaymentVoided"),
                Some("REFUNDED") => wanted.insert("PaymentRefunded"),
                _ => false,
            };
            for event in wanted {
                if !notices.contains_key(&(r.id, event)) {
                    out.push(format!("no {event} notice for reservation {}", r.id));
                }
            }
        }
    }

    /// Every 2xx a client saw is in the final state.
    fn every_success_seen_is_final(&self, evidence: &[Evidence], out: &mut Vec<String>) {
        let paid: BTreeMap<i64, &Payment> = self.s.payments.iter().map(|p| (p.id, p)).collect();
        for seen in evidence {
            match *seen {
                Evidence::Reserved(id) if !self.reservations.contains_key(&id) => out.push(
                    format!("a client got 201 for reservation {id}, which does not exist"),
                ),
                Evidence::Cancelled(id)
                    if self
                        .reservations
                        .get(&id)
                        .is_none_or(|r| r.status != "CANCELLED") =>
                {
                    out.push(format!(
                        "a client cancelled reservation {id}, which is not CANCELLED"
                    ));
                }
                Evidence::Paid(id)
                    if paid
                        .get(&id)
                        .is_none_or(|p| !matches!(p.status.as_str(), "PAID" | "REFUNDED")) =>
                {
                    out.push(format!(
                        "a client paid payment {id}, which is not PAID or REFUNDED"
                    ));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One reservation of each final kind, consistent everywhere.
    fn consistent() -> Snapshot {
        let product = |id, status: &str, reservation_id| Product {
            id,
            status: status.into(),
            reservation_id,
        };
        let reservation = |id, product_id, status: &str| Reservation {
            id,
            product_id,
            status: status.into(),
        };
        let payment = |id, reservation_id, status: &str| Payment {
            id,
            reservation_id,
            status: status.into(),
        };
        let row = |reservation_id, status: &str, payment_id, payment_status: &str| PageRow {
            reservation_id,
            reservation_status: Some(status.into()),
            payment_id: Some(payment_id),
            payment_status: Some(payment_status.into()),
        };
        let notice = |reservation_id, event_type: &str| Notice {
            reservation_id,
            event_type: event_type.into(),
        };
        Snapshot {
            products: vec![
                product(1, "PENDING", Some(1)),
                product(2, "SOLD_OUT", Some(2)),
                product(3, "AVAILABLE", None),
            ],
            reservations: vec![
                reservation(1, 1, "RESERVED"),
                reservation(2, 2, "CONFIRMED"),
                reservation(3, 3, "CANCELLED"),
            ],
            payments: vec![
                payment(1, 1, "UNPAID"),
                payment(2, 2, "PAID"),
                payment(3, 3, "VOIDED"),
            ],
            page: vec![
                row(1, "RESERVED", 1, "UNPAID"),
                row(2, "CONFIRMED", 2, "PAID"),
                row(3, "CANCELLED", 3, "VOIDED"),
            ],
            notices: vec![
                notice(1, "ReservationPlaced"),
                notice(1, "PaymentRequested"),
                notice(2, "ReservationPlaced"),
                notice(2, "PaymentRequested"),
                notice(2, "PaymentCompleted"),
                notice(2, "ReservationConfirmed"),
                notice(3, "ReservationPlaced"),
                notice(3, "ReservationCancelled"),
                notice(3, "PaymentVoided"),
            ],
        }
    }

    fn evidence() -> Vec<Evidence> {
        vec![
            Evidence::Reserved(1),
            Evidence::Paid(2),
            Evidence::Cancelled(3),
        ]
    }

    #[test]
    fn a_consistent_mesh_has_no_violation() {
        assert_eq!(violations(&consistent(), &evidence()), Vec::<String>::new());
    }

    #[test]
    fn a_product_stranded_by_a_cancelled_reservation_is_found() {
        let mut s = consistent();
        s.products[2] = Product {
            id: 3,
            status: "PENDING".into(),
            reservation_id: Some(3),
        };
        let found = violations(&s, &evidence());
        assert!(
            found.iter().any(|v| v.contains("product 3 is PENDING")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|v| v.contains("still holds product 3")),
            "{found:?}"
        );
    }

    #[test]
    fn payments_my_page_and_notices_that_disagree_are_found() {
        let mut s = consistent();
        s.payments[0].status = "PAID".into();
        s.page[1].payment_status = Some("UNPAID".into());
        s.notices.push(Notice {
            reservation_id: 3,
            event_type: "PaymentVoided".into(),
        });
        s.notices
            .retain(|n| !(n.reservation_id == 2 && n.event_type == "ReservationConfirmed"));
        let found = violations(&s, &evidence());
        for expected in [
            "reservation 1 is RESERVED but its payment 1 is PAID",
            "my page row 2",
            "2 notices of PaymentVoided for reservation 3",
            "no ReservationConfirmed notice for reservation 2",
        ] {
            assert!(
                found.iter().any(|v| v.contains(expected)),
                "{expected}: {found:?}"
            );
        }
    }

    #[test]
    fn a_2xx_the_final_state_does_not_reflect_is_found() {
        let lost = [
            Evidence::Reserved(9),
            Evidence::Cancelled(1),
            Evidence::Paid(1),
        ];
        let found = violations(&consistent(), &lost);
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn two_live_reservations_of_one_product_are_found() {
        let mut s = consistent();
        s.reservations.push(Reservation {
            id: 4,
            product_id: 1,
            status: "RESERVED".into(),
        });
        let found = violations(&s, &[]);
        assert!(
            found
                .iter()
                .any(|v| v.contains("product 1 has 2 live reservations")),
            "{found:?}"
        );
    }
}
