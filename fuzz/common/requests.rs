//! Requests built from fuzz input: provisioning, updates, cancellations, migrations,
//! transfers and usage reports, naming plans, add-ons, features, codes and subscriptions
//! from small vocabularies that cover the reference catalog, generated catalogs (see
//! `catalog.rs`) and ids that exist in neither.
//!
//! Requests are written as JSON and parsed by the request types' own deserializers, so the
//! inputs are exactly what a host would send.

use crate::catalog::PeriodChoice;
use chrono::{DateTime, Months, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use tollgate_core::cancellation::CancelRequest;
use tollgate_core::customer::CustomerState;
use tollgate_core::provision::ProvisionRequest;
use tollgate_core::update::{MigrateRequest, TransferRequest, UpdateRequest};
use tollgate_core::usage::ReportUsageRequest;

const PLANS: [&str; 10] = [
    "free",
    "starter",
    "pro",
    "enterprise",
    "ws-basic",
    "ws-plus",
    "p0",
    "p1",
    "p2",
    "missing",
];
const ADDONS: [&str; 8] = [
    "extra-projects",
    "priority-support",
    "api-boost",
    "audit-pack",
    "ws-priority",
    "a0",
    "a1",
    "missing",
];
const FEATURES: [&str; 6] = [
    "seats",
    "storage-gb",
    "api-calls",
    "projects",
    "sso",
    "missing",
];
const CODES: [&str; 5] = ["LAUNCH20", "WELCOME10", "NONPROFIT50", "CODE0", "nope"];
const COUPONS: [&str; 5] = ["launch", "welcome", "nonprofit", "c0", "nope"];
const COUNTRIES: [&str; 5] = ["DE", "US", "JP", "GB", "zz"];
const RESOURCES: [&str; 3] = ["r0", "r1", "r2"];

fn pick<T: Copy>(options: &[T], n: u8) -> T {
    options[usize::from(n) % options.len()]
}

fn instant(t: DateTime<Utc>) -> Value {
    json!(t.to_rfc3339())
}

/// The id of the customer's `n`th subscription, or an id none has.
fn subscription(state: &CustomerState, n: u8) -> String {
    state
        .subscriptions
        .get(usize::from(n))
        .map_or_else(|| format!("missing-{n}"), |s| s.id.as_str().to_owned())
}

fuzz_enum! {
    /// A quantity in a request.
    pub enum Qty {
        Small(u8),
        Negative(u8),
        Large(u32),
        Max,
    }
}

impl Qty {
    fn json(&self) -> Value {
        match self {
            Self::Small(n) => json!(n),
            Self::Negative(n) => json!(-i64::from(*n)),
            Self::Large(n) => json!(n),
            Self::Max => json!(i64::MAX),
        }
    }
}

fuzz_enum! {
    /// An instant relative to the decision's.
    pub enum Offset {
        Now,
        Hours(i8),
        Days(i8),
        Months(i8),
    }
}

impl Offset {
    /// The instant `self` from `now` (`now` when out of range).
    pub fn from(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let moved = match self {
            Self::Now => Some(now),
            Self::Hours(h) => now.checked_add_signed(TimeDelta::hours(i64::from(*h))),
            Self::Days(d) => now.checked_add_signed(TimeDelta::days(i64::from(*d))),
            Self::Months(m) if *m >= 0 => {
                now.checked_add_months(Months::new(m.unsigned_abs().into()))
            }
            Self::Months(m) => now.checked_sub_months(Months::new(m.unsigned_abs().into())),
        };
        moved.unwrap_or(now)
    }
}

fuzz_enum! {
    /// How long the clock moves before a step.
    pub enum Wait {
        None,
        Hours(u8),
        Days(u8),
        Months(u8),
    }
}

impl Wait {
    /// The instant after waiting from `now`.
    pub fn after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let moved = match self {
            Self::None => Some(now),
            Self::Hours(h) => now.checked_add_signed(TimeDelta::hours(i64::from(*h))),
            Self::Days(d) => now.checked_add_signed(TimeDelta::days(i64::from(*d))),
            Self::Months(m) => now.checked_add_months(Months::new(u32::from(*m % 25))),
        };
        moved.unwrap_or(now)
    }
}

fuzz_struct! {
    /// A trial override.
    pub struct TrialChoice {
        pub is_trial: bool,
        pub end: Option<Offset>,
        pub cancel: Option<bool>,
    }
}

fuzz_struct! {
    /// A `provisionSubscription` request.
    pub struct Prov {
        pub plan: u8,
        pub version: Option<u8>,
        pub period: Option<PeriodChoice>,
        pub resource: Option<u8>,
        pub unit_quantity: Option<Qty>,
        pub features: [Option<(u8, Qty)>; 2],
        pub addons: [Option<(u8, Qty)>; 2],
        pub promotion_code: Option<u8>,
        pub coupon: Option<u8>,
        pub country: Option<u8>,
        pub start: Option<Offset>,
        pub skip_trial: bool,
        pub trial: Option<TrialChoice>,
        pub schedule: Option<u8>,
        pub anchor_now: Option<bool>,
        pub proration: Option<u8>,
        pub collection: Option<u8>,
        pub checkout: bool,
        pub id: Option<u8>,
        pub tax: Option<u8>,
    }
}

fuzz_struct! {
    /// An `updateSubscription` request.
    pub struct Upd {
        pub target: u8,
        pub unit_quantity: Option<Qty>,
        pub features: Option<[Option<(u8, Qty)>; 2]>,
        pub addons: Option<[Option<(u8, Qty)>; 2]>,
        pub period: Option<PeriodChoice>,
        pub promotion_code: Option<u8>,
        pub trial_end: Option<Offset>,
        pub schedule: Option<u8>,
        pub anchor_now: Option<bool>,
        pub proration: Option<u8>,
        pub metadata: bool,
    }
}

fuzz_struct! {
    /// A `cancelSubscription` request.
    pub struct Cancel {
        pub target: u8,
        pub timing: Option<u8>,
        pub end: Option<Offset>,
        pub revoke: Option<bool>,
        pub prorate: Option<bool>,
    }
}

fuzz_struct! {
    /// A `reportUsage` request.
    pub struct Usage {
        pub feature: u8,
        pub value: Qty,
        pub set: bool,
        pub resource: Option<u8>,
    }
}

const SCHEDULES: [&str; 3] = ["IMMEDIATE", "END_OF_BILLING_PERIOD", "END_OF_BILLING_MONTH"];
const PRORATIONS: [&str; 3] = ["INVOICE_IMMEDIATELY", "CREATE_PRORATIONS", "NONE"];
const COLLECTIONS: [&str; 3] = ["CHARGE", "INVOICE", "NONE"];

fn quantities(pairs: &[Option<(u8, Qty)>], names: &[&str], key: &str) -> Value {
    Value::Array(
        pairs
            .iter()
            .flatten()
            .map(|(n, q)| json!({key: pick(names, *n), "quantity": q.json()}))
            .collect(),
    )
}

fn anchor(now: bool) -> Value {
    json!(if now { "NOW" } else { "UNCHANGED" })
}

/// Parses a request written above (a macro: `serde` itself is not a dependency of every
/// crate that includes this file, so its trait cannot be named in a bound).
macro_rules! parse {
    ($value:expr) => {
        serde_json::from_value($value).expect("requests are written in the request format")
    };
}

impl Prov {
    /// The request as JSON, for `customer` at `now`.
    pub fn json(&self, customer: &str, now: DateTime<Utc>) -> Map<String, Value> {
        let mut r = Map::new();
        r.insert("customerId".to_owned(), json!(customer));
        r.insert("planId".to_owned(), json!(pick(&PLANS, self.plan)));
        if let Some(v) = self.version {
            r.insert("planVersion".to_owned(), json!(v % 4));
        }
        if let Some(p) = &self.period {
            r.insert("billingPeriod".to_owned(), json!(p.name()));
        }
        if let Some(res) = self.resource {
            r.insert("resourceId".to_owned(), json!(pick(&RESOURCES, res)));
        }
        if let Some(q) = &self.unit_quantity {
            r.insert("unitQuantity".to_owned(), q.json());
        }
        r.insert(
            "billableFeatures".to_owned(),
            quantities(&self.features, &FEATURES, "featureId"),
        );
        r.insert(
            "addons".to_owned(),
            quantities(&self.addons, &ADDONS, "addonId"),
        );
        if let Some(c) = self.promotion_code {
            r.insert("promotionCode".to_owned(), json!(pick(&CODES, c)));
        }
        if let Some(c) = self.coupon {
            r.insert("couponId".to_owned(), json!(pick(&COUPONS, c)));
        }
        if let Some(c) = self.country {
            r.insert("billingCountryCode".to_owned(), json!(pick(&COUNTRIES, c)));
        }
        if let Some(start) = &self.start {
            r.insert("startDate".to_owned(), instant(start.from(now)));
        }
        r.insert("skipTrial".to_owned(), json!(self.skip_trial));
        if let Some(t) = &self.trial {
            let mut o = Map::new();
            o.insert("isTrial".to_owned(), json!(t.is_trial));
            if let Some(end) = &t.end {
                o.insert("trialEndDate".to_owned(), instant(end.from(now)));
            }
            if let Some(cancel) = t.cancel {
                let behavior = if cancel {
                    "CANCEL_SUBSCRIPTION"
                } else {
                    "CONVERT_TO_PAID"
                };
                o.insert("endBehavior".to_owned(), json!(behavior));
            }
            r.insert("trialOverride".to_owned(), Value::Object(o));
        }
        if let Some(s) = self.schedule {
            r.insert("scheduleStrategy".to_owned(), json!(pick(&SCHEDULES, s)));
        }
        if let Some(a) = self.anchor_now {
            r.insert("billingCycleAnchor".to_owned(), anchor(a));
        }
        if let Some(p) = self.proration {
            r.insert("prorationBehavior".to_owned(), json!(pick(&PRORATIONS, p)));
        }
        if let Some(c) = self.collection {
            r.insert(
                "paymentCollectionMethod".to_owned(),
                json!(pick(&COLLECTIONS, c)),
            );
        }
        if self.checkout {
            r.insert(
                "checkoutOptions".to_owned(),
                json!({"successUrl": "s", "cancelUrl": "c"}),
            );
        }
        if let Some(id) = self.id {
            r.insert("subscriptionId".to_owned(), json!(format!("s{}", id % 8)));
        }
        if let Some(t) = self.tax {
            r.insert("taxPercentage".to_owned(), json!(format!("{}.5", t % 40)));
        }
        r
    }

    /// The request for `customer` at `now`.
    pub fn request(&self, customer: &str, now: DateTime<Utc>) -> ProvisionRequest {
        parse!(Value::Object(self.json(customer, now)))
    }
}

impl Upd {
    /// The request for a subscription of `state` at `now`.
    pub fn request(&self, state: &CustomerState, now: DateTime<Utc>) -> UpdateRequest {
        let mut r = Map::new();
        r.insert(
            "subscriptionId".to_owned(),
            json!(subscription(state, self.target)),
        );
        if let Some(q) = &self.unit_quantity {
            r.insert("unitQuantity".to_owned(), q.json());
        }
        if let Some(f) = &self.features {
            r.insert(
                "billableFeatures".to_owned(),
                quantities(f, &FEATURES, "featureId"),
            );
        }
        if let Some(a) = &self.addons {
            r.insert("addons".to_owned(), quantities(a, &ADDONS, "addonId"));
        }
        if let Some(p) = &self.period {
            r.insert("billingPeriod".to_owned(), json!(p.name()));
        }
        if let Some(c) = self.promotion_code {
            r.insert("promotionCode".to_owned(), json!(pick(&CODES, c)));
        }
        if let Some(end) = &self.trial_end {
            r.insert("trialEndDate".to_owned(), instant(end.from(now)));
        }
        if let Some(s) = self.schedule {
            r.insert("scheduleStrategy".to_owned(), json!(pick(&SCHEDULES, s)));
        }
        if let Some(a) = self.anchor_now {
            r.insert("billingCycleAnchor".to_owned(), anchor(a));
        }
        if let Some(p) = self.proration {
            r.insert("prorationBehavior".to_owned(), json!(pick(&PRORATIONS, p)));
        }
        if self.metadata {
            r.insert("metadata".to_owned(), json!({"k": "v"}));
        }
        parse!(Value::Object(r))
    }
}

impl Cancel {
    /// The request for a subscription of `state` at `now`.
    pub fn request(&self, state: &CustomerState, now: DateTime<Utc>) -> CancelRequest {
        let mut r = Map::new();
        r.insert(
            "subscriptionId".to_owned(),
            json!(subscription(state, self.target)),
        );
        if let Some(t) = self.timing {
            let timings = ["IMMEDIATE", "END_OF_BILLING_PERIOD", "SPECIFIC_DATE"];
            r.insert("cancellationTime".to_owned(), json!(pick(&timings, t)));
        }
        if let Some(end) = &self.end {
            r.insert("endDate".to_owned(), instant(end.from(now)));
        }
        if let Some(revoke) = self.revoke {
            let action = if revoke {
                "REVOKE_ENTITLEMENTS"
            } else {
                "DEFAULT"
            };
            r.insert("action".to_owned(), json!(action));
        }
        if let Some(prorate) = self.prorate {
            r.insert("prorate".to_owned(), json!(prorate));
        }
        parse!(Value::Object(r))
    }
}

/// A migration of a subscription of `state`.
pub fn migrate(state: &CustomerState, target: u8, at_period_end: bool) -> MigrateRequest {
    let time = if at_period_end {
        "END_OF_BILLING_PERIOD"
    } else {
        "IMMEDIATE"
    };
    parse!(json!({"subscriptionId": subscription(state, target), "migrationTime": time}))
}

/// A transfer of a subscription of `state` to a resource.
pub fn transfer(state: &CustomerState, target: u8, resource: u8) -> TransferRequest {
    parse!(json!({"subscriptionId": subscription(state, target),
                 "destinationResourceId": pick(&RESOURCES, resource)}))
}

impl Usage {
    /// The request for `customer`.
    pub fn request(&self, customer: &str) -> ReportUsageRequest {
        let mut r = Map::new();
        r.insert("customerId".to_owned(), json!(customer));
        r.insert("featureId".to_owned(), json!(pick(&FEATURES, self.feature)));
        r.insert("value".to_owned(), self.value.json());
        r.insert(
            "updateBehavior".to_owned(),
            json!(if self.set { "SET" } else { "DELTA" }),
        );
        if let Some(res) = self.resource {
            r.insert("resourceId".to_owned(), json!(pick(&RESOURCES, res)));
        }
        parse!(Value::Object(r))
    }
}
