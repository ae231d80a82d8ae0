//! The `provision_decision` target: a few requests decided in turn for one customer, each
//! success applied to the customer's state, against the reference catalog or a generated
//! one (see `catalog.rs`).
//!
//! Usage reports and the clock count as steps too. Every step is decided twice, with two separately loaded copies of the catalog, and must
//! give byte-identical output (compared through `Debug`, which also shows every amount's
//! scale). Nothing may panic; a failure must carry a code and a message; after each step
//! every (product, resource) scope holds at most one live trial and one live non-trial
//! subscription, no invoice (stored or issued) and no estimate has a negative total.

use crate::catalog::{GenCatalog, reference};
use crate::checks;
use crate::requests::{Cancel, Prov, Upd, Usage, Wait, migrate, transfer};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::fmt::Debug;
use tollgate_core::cancellation::{archive_customer, cancel_subscription};
use tollgate_core::coupon::{Redemptions, held_codes, scheduled_redemptions};
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::estimate::{Estimate, estimate_subscription, estimate_subscription_update};
use tollgate_core::id::{CountryCode, CustomerId};
use tollgate_core::lifecycle::advance;
use tollgate_core::money::{Currency, RoundingMode};
use tollgate_core::proration::ProrationPolicy;
use tollgate_core::provision::{ProvisionDecision, provision};
use tollgate_core::settings::Settings;
use tollgate_core::update::{
    cancel_scheduled_updates, migrate_subscription_to_latest, transfer_subscription,
    update_subscription,
};
use tollgate_core::usage::report_usage;
use tollgate_core::{Catalog, Error};

fuzz_enum! {
    /// A proration convention.
    pub enum Policy {
        Stripe,
        KillBill,
        Lago,
        ThirtyDay,
    }
}

impl Policy {
    /// The core policy.
    pub fn policy(&self) -> ProrationPolicy {
        match self {
            Self::Stripe => ProrationPolicy::Stripe,
            Self::KillBill => ProrationPolicy::KillBill,
            Self::Lago => ProrationPolicy::Lago,
            Self::ThirtyDay => ProrationPolicy::ThirtyDay,
        }
    }
}

fuzz_struct! {
    /// The settings and the customer before the first step.
    pub struct Setup {
        pub billing_integration: bool,
        pub policy: Policy,
        pub half_even: bool,
        pub has_payment_method: bool,
        pub zone: u16,
        pub country: Option<u8>,
        pub tax: Option<u8>,
        pub tax_inclusive: bool,
        pub credit: Option<u16>,
    }
}

fuzz_enum! {
    /// What a step asks.
    pub enum Action {
        Provision(Prov),
        Update(Upd),
        Cancel(Cancel),
        Advance,
        EstimateProvision(Prov),
        EstimateUpdate(Upd),
        Migrate(u8, bool),
        Transfer(u8, u8),
        CancelScheduled(u8),
        Archive,
        ReportUsage(Usage),
    }
}

fuzz_struct! {
    /// One step: the clock moves, the payment method may change, the clock may run up to
    /// the step's instant first (as a host does before a request), then the action.
    pub struct Step {
        pub wait: Wait,
        pub payment_method: Option<bool>,
        pub clock_first: bool,
        pub action: Action,
    }
}

fuzz_struct! {
    /// The whole input.
    pub struct Input {
        pub catalog: Option<GenCatalog>,
        pub setup: Setup,
        pub steps: [Option<Step>; 6],
    }
}

/// Where every timeline starts.
pub fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600, 0).expect("2025-01-01 is in range")
}

impl Setup {
    /// The settings.
    pub fn settings(&self) -> Settings {
        let rounding = if self.half_even {
            RoundingMode::HalfEven
        } else {
            RoundingMode::HalfUp
        };
        Settings::new(self.billing_integration, self.policy.policy(), rounding)
    }

    /// The customer's state before the first step.
    pub fn state(&self) -> CustomerState {
        let mut customer = Customer::new(CustomerId::new("c1"));
        customer.has_payment_method = self.has_payment_method;
        let zones = chrono_tz::TZ_VARIANTS;
        customer.timezone = zones[usize::from(self.zone) % zones.len()];
        customer.country = self
            .country
            .and_then(|c| CountryCode::parse(["DE", "US", "JP", "GB"][usize::from(c) % 4]));
        customer.tax_percentage = self.tax.map(|t| Decimal::new(i64::from(t % 50), 0));
        customer.tax_inclusive = self.tax_inclusive;
        if let (Some(credit), Some(usd)) = (self.credit, Currency::parse("USD")) {
            customer
                .credit_balance
                .insert(usd, Decimal::new(i64::from(credit), 2));
        }
        CustomerState::new(customer)
    }
}

/// Decides with both catalog copies, checks the two answers are identical and a failure
/// has a code; answers the first copy's success.
fn twice<T: Debug>(
    catalogs: (&Catalog, &Catalog),
    context: &str,
    decide: impl Fn(&Catalog) -> Result<T, Error>,
) -> Option<T> {
    let first = decide(catalogs.0);
    let second = decide(catalogs.1);
    let (a, b) = (format!("{first:?}"), format!("{second:?}"));
    assert!(
        a == b,
        "{context}: the same input decided twice differs:\n{a}\n---\n{b}"
    );
    match first {
        Ok(value) => Some(value),
        Err(e) => {
            checks::error(e.code().as_str(), e.message(), context);
            None
        }
    }
}

fn estimate(estimate: &Estimate, context: &str) {
    for (what, total) in [
        ("now", estimate.now.total),
        ("recurring", estimate.recurring.total),
    ] {
        assert!(
            total.is_sign_positive() || total.is_zero(),
            "{context}: the estimate's {what} total is negative: {estimate:#?}"
        );
    }
}

fn applied(
    decision: &ProvisionDecision,
    state: &mut CustomerState,
    redemptions: &mut Redemptions,
    now: DateTime<Utc>,
    context: &str,
) {
    if let Some(invoice) = &decision.effects.invoice {
        checks::invoice(invoice, context);
    }
    let held = held_codes(state);
    decision.apply(state, now);
    // Counted as a host counts: the code the request redeemed, and the codes scheduled
    // changes took or gave back.
    let scheduled = scheduled_redemptions(&held, state);
    for code in &scheduled.released {
        redemptions.release(code);
    }
    for code in decision
        .effects
        .redeemed_code
        .iter()
        .chain(&scheduled.redeemed)
    {
        redemptions.record(code);
    }
}

/// Plays the input's steps.
pub fn exercise(input: &Input) {
    let generated = input.catalog.as_ref().and_then(GenCatalog::load);
    let catalogs = match &generated {
        Some((a, b)) => (a, b),
        None => (&reference().0, &reference().1),
    };
    let settings = input.setup.settings();
    let mut state = input.setup.state();
    let mut redemptions = Redemptions::new();
    let mut now = start();
    for (n, step) in input.steps.iter().flatten().enumerate() {
        now = step.wait.after(now);
        if let Some(has) = step.payment_method {
            state.customer.has_payment_method = has;
        }
        let context = format!("step {n} at {now} ({:?})", step.action);
        let caught_up = if step.clock_first {
            twice(catalogs, &context, |c| advance(c, &state, now, &settings))
        } else {
            None
        };
        if let Some((after, _)) = caught_up {
            state = after;
        }
        let s = &state;
        let r = &redemptions;
        match &step.action {
            Action::Provision(p) => {
                let request = p.request("c1", now);
                let decided = twice(catalogs, &context, |c| {
                    provision(c, s, &request, r, now, &settings)
                });
                if let Some(d) = decided {
                    applied(&d, &mut state, &mut redemptions, now, &context);
                }
            }
            Action::Update(u) => {
                let request = u.request(s, now);
                let decided = twice(catalogs, &context, |c| {
                    update_subscription(c, s, &request, r, now, &settings)
                });
                if let Some(d) = decided {
                    applied(&d, &mut state, &mut redemptions, now, &context);
                }
            }
            Action::Migrate(target, at_end) => {
                let request = migrate(s, *target, *at_end);
                let decided = twice(catalogs, &context, |c| {
                    migrate_subscription_to_latest(c, s, &request, r, now, &settings)
                });
                if let Some(d) = decided {
                    applied(&d, &mut state, &mut redemptions, now, &context);
                }
            }
            Action::Transfer(target, resource) => {
                let request = transfer(s, *target, *resource);
                let decided = twice(catalogs, &context, |c| {
                    transfer_subscription(c, s, &request, now)
                });
                if let Some(d) = decided {
                    applied(&d, &mut state, &mut redemptions, now, &context);
                }
            }
            Action::CancelScheduled(target) => {
                let request = serde_json::from_value(serde_json::json!({
                    "subscriptionId": s.subscriptions.get(usize::from(*target))
                        .map_or("missing", |sub| sub.id.as_str()),
                }))
                .expect("a cancelScheduledUpdates request");
                let decided = twice(catalogs, &context, |_| {
                    cancel_scheduled_updates(s, &request)
                });
                if let Some(d) = decided {
                    applied(&d, &mut state, &mut redemptions, now, &context);
                }
            }
            Action::Cancel(c) => {
                let request = c.request(s, now);
                let decided = twice(catalogs, &context, |cat| {
                    cancel_subscription(cat, s, &request, now, &settings)
                });
                if let Some(d) = decided {
                    if let Some(invoice) = &d.invoice {
                        checks::invoice(invoice, &context);
                    }
                    state = d.state;
                }
            }
            Action::Advance => {
                if let Some((after, _)) =
                    twice(catalogs, &context, |c| advance(c, s, now, &settings))
                {
                    state = after;
                }
            }
            Action::Archive => {
                if let Some(d) = twice(catalogs, &context, |c| {
                    archive_customer(c, s, now, &settings)
                }) {
                    state = d.state;
                }
            }
            Action::ReportUsage(u) => {
                let request = u.request("c1");
                let reported = twice(catalogs, &context, |c| {
                    let mut after = s.clone();
                    report_usage(c, &mut after, &request, now).map(|report| (after, report))
                });
                if let Some((after, _)) = reported {
                    state = after;
                }
            }
            Action::EstimateProvision(p) => {
                let request = p.request("c1", now);
                let estimated = twice(catalogs, &context, |c| {
                    estimate_subscription(c, s, &request, r, now, &settings)
                });
                if let Some(e) = estimated {
                    estimate(&e, &context);
                }
            }
            Action::EstimateUpdate(u) => {
                let request = u.request(s, now);
                let estimated = twice(catalogs, &context, |c| {
                    estimate_subscription_update(c, s, &request, r, now, &settings)
                });
                if let Some(e) = estimated {
                    estimate(&e, &context);
                }
            }
        }
        checks::scopes(&state, &context);
        checks::invoices(&state, &context);
    }
}
