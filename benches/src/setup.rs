//! Customers the benchmarks set up, and the decision the `decision` benchmark times (shared
//! with `decide-loop`): an upgrade on the reference catalog
//! (`crates/core/tests/data/reference-catalog.json`) for a customer with 5 live
//! subscriptions, with add-ons, proration and tax.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use tollgate_core::Catalog;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::CustomerId;
use tollgate_core::provision::{ProvisionDecision, ProvisionRequest, provision};
use tollgate_core::settings::Settings;

const REFERENCE: &[u8] = include_bytes!("../../crates/core/tests/data/reference-catalog.json");

/// Everything one decision needs, and the JSON of its request.
pub struct Upgrade {
    /// The reference catalog.
    pub catalog: Catalog,
    /// A customer on `starter` with a parallel `pro` trial and three workspaces.
    pub state: CustomerState,
    /// The request as the host receives it: `pro` with 12 seats and two add-ons.
    pub json: Vec<u8>,
    /// The request, parsed.
    pub request: ProvisionRequest,
    /// Nine days into the customer's first month.
    pub now: DateTime<Utc>,
    /// The default settings.
    pub settings: Settings,
    /// No promotion code redeemed yet.
    pub redemptions: Redemptions,
}

impl Upgrade {
    /// Parses the request from its JSON, as a host would.
    ///
    /// # Errors
    /// None for the request built here; serde's error otherwise.
    pub fn parse(&self) -> Result<ProvisionRequest, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }

    /// Decides the request.
    ///
    /// # Errors
    /// None for the state built here; the decision's error otherwise.
    pub fn decide(&self) -> Result<ProvisionDecision, tollgate_core::Error> {
        provision(
            &self.catalog,
            &self.state,
            &self.request,
            &self.redemptions,
            self.now,
            &self.settings,
        )
    }
}

/// Why a benchmark's setup failed, in words.
pub type SetupError = String;

/// The instant `text` (RFC 3339).
///
/// # Errors
/// Text that is no instant.
pub fn instant(text: &str) -> Result<DateTime<Utc>, SetupError> {
    text.parse().map_err(|_| invalid(text))
}

fn invalid(what: impl std::fmt::Display) -> SetupError {
    format!("the benchmark setup is invalid: {what}")
}

/// The state of `customer` after provisioning each of `requests` (JSON, FORMAT.md §3) at
/// `start` with the default settings, as the benchmarks set their customers up.
///
/// # Errors
/// A request that does not parse or does not provision.
pub fn provisioned(
    catalog: &Catalog,
    customer: Customer,
    start: DateTime<Utc>,
    requests: impl IntoIterator<Item = serde_json::Value>,
) -> Result<CustomerState, SetupError> {
    let mut state = CustomerState::new(customer);
    for request in requests {
        let request: ProvisionRequest = serde_json::from_value(request).map_err(invalid)?;
        let decision = provision(
            catalog,
            &state,
            &request,
            &Redemptions::new(),
            start,
            &Settings::default(),
        )
        .map_err(invalid)?;
        decision.apply(&mut state, start);
    }
    Ok(state)
}

/// Customer `c1`, with a payment method.
#[must_use]
pub fn paying_customer() -> Customer {
    let mut customer = Customer::new(CustomerId::new("c1"));
    customer.has_payment_method = true;
    customer
}

/// The customer of the upgrade, on the reference catalog: `starter` (monthly, no trial), a
/// parallel `pro` trial and three `ws-plus` workspaces, all started on 2025-01-01, taxed at
/// 20 %.
///
/// # Errors
/// Any error of provisioning the five subscriptions (none on the reference catalog).
pub fn customer(catalog: &Catalog) -> Result<CustomerState, SetupError> {
    let mut customer = paying_customer();
    customer.tax_percentage = Some(Decimal::from(20));
    let mut requests = vec![
        json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s1"}),
        json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "s2", "trialOverride": {"isTrial": true, "trialEndDate": "2025-02-01T00:00:00Z"}}),
    ];
    for (i, resource) in ["w1", "w2", "w3"].iter().enumerate() {
        requests.push(json!({"customerId": "c1", "planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": resource,
            "subscriptionId": format!("w{i}"), "billableFeatures": [{"featureId": "storage-gb", "quantity": 50}]}));
    }
    provisioned(
        catalog,
        customer,
        instant("2025-01-01T00:00:00Z")?,
        requests,
    )
}

/// The upgrade: `pro` with 12 seats, `priority-support` and 2 × `extra-projects`, on
/// 2025-01-10T08:30:00Z, replacing `starter` and prorating the rest of January.
///
/// # Errors
/// Any error of building the customer (none on the reference catalog).
pub fn upgrade() -> Result<Upgrade, SetupError> {
    let catalog = Catalog::from_json(REFERENCE).map_err(invalid)?;
    let state = customer(&catalog)?;
    let json = json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "up",
        "billableFeatures": [{"featureId": "seats", "quantity": 12}],
        "addons": [{"addonId": "priority-support"}, {"addonId": "extra-projects", "quantity": 2}]})
    .to_string()
    .into_bytes();
    let request = serde_json::from_slice(&json).map_err(invalid)?;
    Ok(Upgrade {
        catalog,
        state,
        json,
        request,
        now: instant("2025-01-10T08:30:00Z")?,
        settings: Settings::default(),
        redemptions: Redemptions::new(),
    })
}
