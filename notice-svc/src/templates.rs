//! Notification texts, in English or Korean (`NOTICE_LANG`), one template per status change.

use std::str::FromStr;

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

/// What a notification is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeFacts {
    /// The event's type, e.g. `ReservationPlaced`.
    pub event_type: &'static str,
    /// The reservation concerned.
    pub reservation_id: i64,
    /// The product, when known.
    pub product_name: Option<String>,
    /// The payment, when the change is about one.
    pub payment_id: Option<i64>,
}

/// Renders the notification text for `facts` in `lang`.
pub fn render(lang: Lang, facts: &NoticeFacts) -> String {
    let r = facts.reservation_id;
    // Interpolated text is escaped: a name must not reorder or hide the rest of the message.
    let product =
        mesh_core::text::escape_deceptive(facts.product_name.as_deref().unwrap_or_default());
    let p = facts.payment_id.unwrap_or_default();
    match (lang, facts.event_type) {
        (Lang::En, "ReservationPlaced") => {
            format!("Reservation {r} for {product} is placed: the product is held for you.")
        }
        (Lang::En, "ReservationCancelled") => format!("Reservation {r} was cancelled."),
        (Lang::En, "ReservationConfirmed") => format!("Reservation {r} is paid and complete."),
        (Lang::En, "PaymentRequested") => {
            format!("Payment {p} for reservation {r} is waiting for you.")
        }
        (Lang::En, "PaymentCompleted") => {
            format!("Payment {p} for reservation {r} was received. Thank you!")
        }
        (Lang::En, "PaymentVoided") => format!("Payment {p} for reservation {r} was voided."),
        (Lang::En, "PaymentRefunded") => format!("Payment {p} for reservation {r} was refunded."),
        (Lang::Ko, "ReservationPlaced") => {
            format!("{product} 예약({r}번)이 완료되었습니다. 상품이 고객님을 위해 확보되었습니다.")
        }
        (Lang::Ko, "ReservationCancelled") => format!("예약 {r}번이 취소되었습니다."),
        (Lang::Ko, "ReservationConfirmed") => {
            format!("예약 {r}번의 결제가 완료되어 예약이 확정되었습니다.")
        }
        (Lang::Ko, "PaymentRequested") => format!("예약 {r}번의 결제({p}번)를 기다리고 있습니다."),
        (Lang::Ko, "PaymentCompleted") => {
            format!("예약 {r}번의 결제({p}번)가 완료되었습니다. 감사합니다!")
        }
        (Lang::Ko, "PaymentVoided") => format!("예약 {r}번의 결제({p}번)가 취소되었습니다."),
        (Lang::Ko, "PaymentRefunded") => format!("예약 {r}번의 결제({p}번)가 환불되었습니다."),
        (Lang::En, other) => format!("Reservation {r}: {other}."),
        (Lang::Ko, other) => format!("예약 {r}번: {other}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(event_type: &'static str) -> NoticeFacts {
        NoticeFacts {
            event_type,
            reservation_id: 7,
            product_name: Some("Phone".into()),
            payment_id: Some(3),
        }
    }

    #[test]
    fn english_and_korean_name_the_reservation() {
        let en = render(Lang::En, &facts("ReservationPlaced"));
        assert_eq!(
            en,
            "Reservation 7 for Phone is placed: the product is held for you."
        );
        let ko = render(Lang::Ko, &facts("PaymentCompleted"));
        assert!(
            ko.contains("7번") && ko.contains("3번") && ko.contains("완료"),
            "{ko}"
        );
    }

    #[test]
    fn every_status_change_has_its_own_text() {
        let types = [
            "ReservationPlaced",
            "ReservationCancelled",
            "ReservationConfirmed",
            "PaymentRequested",
            "PaymentCompleted",
            "PaymentVoided",
            "PaymentRefunded",
        ];
        for lang in [Lang::En, Lang::Ko] {
            let texts: std::collections::HashSet<_> =
                types.iter().map(|t| render(lang, &facts(t))).collect();
            assert_eq!(texts.len(), types.len(), "{lang:?}");
        }
    }

    #[test]
    fn languages_parse() {
        assert_eq!("KO".parse(), Ok(Lang::Ko));
        assert_eq!("en".parse(), Ok(Lang::En));
        assert!("fr".parse::<Lang>().is_err());
    }
}
