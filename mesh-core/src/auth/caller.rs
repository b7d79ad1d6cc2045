//! Who is calling and what they may do: pure rules, no I/O, the same in the gateway and in
//! every service.

use std::fmt;

/// A role a token grants (from the configurable roles claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reserves, pays and cancels their own reservations.
    Buyer,
    /// Registers products and reads the reservations and payments of them.
    Seller,
    /// Reads and acts on everything, and may call the admin service.
    Admin,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 3] = [Role::Buyer, Role::Seller, Role::Admin];

    /// The role's name in tokens.
    pub fn name(self) -> &'static str {
        match self {
            Self::Buyer => "buyer",
            Self::Seller => "seller",
            Self::Admin => "admin",
        }
    }

    /// The role named `name` in a token; unknown names grant nothing.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.name() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Self::Buyer => 1,
            Self::Seller => 2,
            Self::Admin => 4,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The subject of the built-in caller that dev mode lets in without a token.
pub const ANONYMOUS: &str = "anonymous";

/// An authenticated caller: the token's subject and roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    subject: String,
    roles: u8,
}

/// Why a caller may not do something: answered 403 / PERMISSION_DENIED.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

impl Caller {
    /// A caller with `subject` and `roles`.
    pub fn new(subject: impl Into<String>, roles: impl IntoIterator<Item = Role>) -> Self {
        Self {
            subject: subject.into(),
            roles: roles.into_iter().fold(0, |bits, role| bits | role.bit()),
        }
    }

    /// Dev mode's caller without a token: the `anonymous` buyer and seller (not an admin).
    pub fn anonymous() -> Self {
        Self::new(ANONYMOUS, [Role::Buyer, Role::Seller])
    }

    /// The token's `sub`: the user's id.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Whether the token grants `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles & role.bit() != 0
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// Ok when the token grants `role`, else why not.
    pub fn require(&self, role: Role, to: &str) -> Result<(), Denied> {
        if self.has(role) {
            Ok(())
        } else {
            Err(Denied(format!("only a {role} may {to}")))
        }
    }

    /// Ok when the caller is `customer` (the buyer it concerns) or an admin: who may act on,
    /// or read, a buyer's own reservation, payment, my page or notices.
    pub fn require_buyer_or_admin(&self, customer: &str, what: &str) -> Result<(), Denied> {
        if self.is_admin() || self.subject == customer {
            Ok(())
        } else {
            Err(Denied(format!("{what} belongs to another buyer")))
        }
    }

    /// Whether the caller may read something of `customer` about a product sold by
    /// `seller`: its buyer, its product's seller, or an admin.
    pub fn may_read(&self, customer: &str, seller: &str) -> bool {
        self.is_admin()
            || self.subject == customer
            || (!seller.is_empty() && self.subject == seller)
    }

    /// Ok when [`Caller::may_read`], else why not.
    pub fn require_reader(&self, customer: &str, seller: &str, what: &str) -> Result<(), Denied> {
        if self.may_read(customer, seller) {
            Ok(())
        } else {
            Err(Denied(format!(
                "{what} belongs to another buyer and another seller's product"
            )))
        }
    }

    /// Whose rows a filtered listing shows this caller, as a key for its page tokens:
    /// everyone's (`*`) for an admin, else their own (`@sub`).
    pub fn visibility(&self) -> String {
        if self.is_admin() {
            "*".to_owned()
        } else {
            format!("@{}", self.subject)
        }
    }

    /// The roles, by name, for logs and tokens.
    pub fn role_names(&self) -> Vec<&'static str> {
        Role::ALL
            .into_iter()
            .filter(|role| self.has(*role))
            .map(Role::name)
            .collect()
    }
}

/// The customer a new reservation is for: the caller's own subject. A `requested` customer
/// that names someone else is refused, whatever the caller's roles: nobody reserves in
/// another buyer's name.
pub fn reserving_customer(caller: &Caller, requested: &str) -> Result<String, Denied> {
    caller.require(Role::Buyer, "reserve")?;
    if requested.is_empty() || requested == caller.subject() {
        Ok(caller.subject().to_owned())
    } else {
        Err(Denied(format!(
            "a buyer reserves in their own name ({:?}), not for {requested:?}",
            caller.subject()
        )))
    }
}

/// Whose page (my page, notices) a listing shows: `requested` when it is the caller's own
/// or the caller is an admin; the caller's own when none is named; everyone's (`""`) only
/// for an admin naming none.
pub fn page_owner(caller: &Caller, requested: &str) -> Result<String, Denied> {
    let requested = requested.trim();
    if requested.is_empty() {
        return Ok(if caller.is_admin() {
            String::new()
        } else {
            caller.subject().to_owned()
        });
    }
    caller.require_buyer_or_admin(requested, &format!("the page of {requested:?}"))?;
    Ok(requested.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buyer(name: &str) -> Caller {
        Caller::new(name, [Role::Buyer])
    }

    #[test]
    fn roles_parse_by_name_and_unknown_names_grant_nothing() {
        assert_eq!(Role::parse("seller"), Some(Role::Seller));
        assert_eq!(Role::parse("root"), None);
        let caller = Caller::new("x", [Role::Seller, Role::Admin]);
        assert_eq!(caller.role_names(), vec!["seller", "admin"]);
        assert!(!caller.has(Role::Buyer));
    }

    #[test]
    fn a_buyer_reserves_only_in_their_own_name() {
        assert_eq!(reserving_customer(&buyer("kim"), "").unwrap(), "kim");
        assert_eq!(reserving_customer(&buyer("kim"), "kim").unwrap(), "kim");
        assert!(reserving_customer(&buyer("kim"), "lee").is_err());
        let admin = Caller::new("ops", [Role::Admin, Role::Buyer]);
        assert!(reserving_customer(&admin, "lee").is_err());
        assert!(reserving_customer(&Caller::new("lee", [Role::Seller]), "").is_err());
    }

    #[test]
    fn only_the_buyer_or_an_admin_acts_on_a_reservation() {
        assert!(buyer("kim").require_buyer_or_admin("kim", "x").is_ok());
        assert!(buyer("lee").require_buyer_or_admin("kim", "x").is_err());
        assert!(
            Caller::new("ops", [Role::Admin])
                .require_buyer_or_admin("kim", "x")
                .is_ok()
        );
    }

    #[test]
    fn the_seller_of_the_product_may_read_but_no_other_seller() {
        let seller = Caller::new("lee", [Role::Seller]);
        assert!(seller.may_read("kim", "lee"));
        assert!(!seller.may_read("kim", "park"));
        // An unknown seller (rows from before sellers were recorded) matches nobody.
        assert!(!Caller::new("", [Role::Seller]).may_read("kim", ""));
    }

    #[test]
    fn a_page_is_shown_to_its_buyer_and_everyones_only_to_an_admin() {
        assert_eq!(page_owner(&buyer("kim"), "").unwrap(), "kim");
        assert_eq!(page_owner(&buyer("kim"), " kim ").unwrap(), "kim");
        assert!(page_owner(&buyer("kim"), "lee").is_err());
        let admin = Caller::new("ops", [Role::Admin]);
        assert_eq!(page_owner(&admin, "").unwrap(), "");
        assert_eq!(page_owner(&admin, "lee").unwrap(), "lee");
    }

    #[test]
    fn visibility_tells_admins_from_everyone_else() {
        assert_eq!(Caller::new("ops", [Role::Admin]).visibility(), "*");
        assert_eq!(buyer("kim").visibility(), "@kim");
        assert_ne!(buyer("*").visibility(), "*");
    }

    #[test]
    fn anonymous_is_a_buyer_and_seller_but_not_an_admin() {
        let anonymous = Caller::anonymous();
        assert_eq!(anonymous.subject(), ANONYMOUS);
        assert!(anonymous.has(Role::Buyer) && anonymous.has(Role::Seller));
        assert!(!anonymous.is_admin());
    }
}
