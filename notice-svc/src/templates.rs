//! Notification texts, in English or Korean (`NOTICE_LANG`), one template per status change.

use std::str::FromStr;

use crate::domain::{Id, NoticeFacts, PaymentStatus, ReservationStatus, Subject};

/// The language notifications are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Korean.
    Ko,
}

impl FromStr for Lang {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "en" | "english" => Ok(Self::En),
            "ko" | "korean" => Ok(Self::Ko),
            other => Err(format!("unknown language {other:?}; use en or ko")),
        }
    }
}

/// Renders the notification text for `facts` in `lang`: one text per status a reservation or
/// payment can move to, so a new status does not compile until it has its texts.
pub fn render(lang: Lang, facts: &NoticeFacts) -> String {
    let r = facts.reservation_id;
    // Interpolated text is escaped: a name must not reorder or hide the rest of the message.
    let product =
        mesh_core::text::escape_deceptive(facts.product_name.as_deref().unwrap_or_default());
    match facts.subject {
        Subject::Reservation(status) => reservation_text(lang, status, r, &product),
        Subject::Payment { payment_id, status } => payment_text(lang, status, r, payment_id),
    }
}

fn reservation_text(lang: Lang, status: ReservationStatus, r: Id, product: &str) -> String {
    use ReservationStatus::{Cancelled, Confirmed, Reserved, Unspecified};
    match (lang, status) {
        (Lang::En, Reserved) => {
            format!("Reservation {r} for {product} is placed: the product is held for you.")
        }
        (Lang::En, Cancelled) => format!("Reservation {r} was cancelled."),
        (Lang::En, Confirmed) => format!("Reservation {r} is paid and complete."),
        (Lang::En, Unspecified) => format!("Reservation {r} changed."),
        (Lang::Ko, Reserved) => {
            format!("{product} 예약({r}번)이 완료되었습니다. 상품이 고객님을 위해 확보되었습니다.")
        }
        (Lang::Ko, Cancelled) => format!("예약 {r}번이 취소되었습니다."),
        (Lang::Ko, Confirmed) => format!("예약 {r}번의 결제가 완료되어 예약이 확정되었습니다."),
        (Lang::Ko, Unspecified) => format!("예약 {r}번이 변경되었습니다."),
    }
}

fn payment_text(lang: Lang, status: PaymentStatus, r: Id, p: Id) -> String {
    use PaymentStatus::{Paid, Refunded, Unpaid, Unspecified, Voided};
    match (lang, status) {
        (Lang::En, Unpaid) => format!("Payment {p} for reservation {r} is waiting for you."),
        (Lang::En, Paid) => format!("Payment {p} for reservation {r} was received. Thank you!"),
        (Lang::En, Voided) => format!("Payment {p} for reservation {r} was voided."),
        (Lang::En, Refunded) => format!("Payment {p} for reservation {r} was refunded."),
        (Lang::En, Unspecified) => format!("Payment {p} for reservation {r} changed."),
        (Lang::Ko, Unpaid) => format!("예약 {r}번의 결제({p}번)를 기다리고 있습니다."),
        (Lang::Ko, Paid) => format!("예약 {r}번의 결제({p}번)가 완료되었습니다. 감사합니다!"),
        (Lang::Ko, Voided) => format!("예약 {r}번의 결제({p}번)가 취소되었습니다."),
        (Lang::Ko, Refunded) => format!("예약 {r}번의 결제({p}번)가 환불되었습니다."),
        (Lang::Ko, Unspecified) => format!("예약 {r}번의 결제({p}번)가 변경되었습니다."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: i64) -> Id {
        Id::parse(raw, "id").expect("positive")
    }

    fn facts(subject: Subject) -> NoticeFacts {
        NoticeFacts {
            event_type: "ReservationPlaced",
            customer_id: "kim".into(),
            reservation_id: id(7),
            product_name: Some("Phone".into()),
            subject,
        }
    }

    fn paid(status: PaymentStatus) -> Subject {
        Subject::Payment {
            payment_id: id(3),
            status,
        }
    }

    #[test]
    fn english_and_korean_name_the_reservation() {
        let en = render(
            Lang::En,
            &facts(Subject::Reservation(ReservationStatus::Reserved)),
        );
        assert_eq!(
            en,
            "Reservation 7 for Phone is placed: the product is held for you."
        );
        let ko = render(Lang::Ko, &facts(paid(PaymentStatus::Paid)));
        assert!(
            ko.contains("7번") && ko.contains("3번") && ko.contains("완료"),
            "{ko}"
        );
    }

    #[test]
    fn every_status_change_has_its_own_text() {
        let subjects = [
            Subject::Reservation(ReservationStatus::Reserved),
            Subject::Reservation(ReservationStatus::Cancelled),
            Subject::Reservation(ReservationStatus::Confirmed),
            paid(PaymentStatus::Unpaid),
            paid(PaymentStatus::Paid),
            paid(PaymentStatus::Voided),
            paid(PaymentStatus::Refunded),
        ];
        for lang in [Lang::En, Lang::Ko] {
            let texts: std::collections::HashSet<_> = subjects
                .iter()
                .map(|subject| render(lang, &facts(*subject)))
                .collect();
            assert_eq!(texts.len(), subjects.len(), "{lang:?}");
        }
    }

    #[test]
    fn languages_parse() {
        assert_eq!("KO".parse(), Ok(Lang::Ko));
        assert_eq!("en".parse(), Ok(Lang::En));
        assert!("fr".parse::<Lang>().is_err());
    }
}
