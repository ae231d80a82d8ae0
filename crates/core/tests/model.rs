//! Random sequences of every operation and clock move, run beside a tiny model of what may
//! happen to a subscription. After each step:
//! - a scope never holds two live non-trial (or two live trial) subscriptions;
//! - no invoice is negative, invoices are only ever appended, the credit balance is never
//!   negative;
//! - every status change is one the model allows (nothing comes back from `CANCELED`);
//! - subscriptions are never removed, and a failed operation changes nothing.
//!
//! At the end, moving the clock to `a` and then to `b` equals moving it to `b`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::reference_catalog as catalog;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tollgate_core::Catalog;
use tollgate_core::cancellation::{CancelRequest, archive_customer, cancel_subscription};
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::{CustomerId, ResourceId, SubscriptionId};
use tollgate_core::lifecycle::{advance, collect_pending_payments};
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::SubscriptionStatus as S;
use tollgate_core::update::{
    CancelScheduledRequest, MigrateRequest, TransferRequest, UpdateRequest,
    cancel_scheduled_updates, migrate_subscription_to_latest, transfer_subscription,
    update_subscription,
};
use tollgate_core::usage::{ReportUsageRequest, report_usage};

/// The model: the status changes a subscription may make, in one step or several.
fn allowed(from: S, to: S) -> bool {
    from == to
        || matches!(
            (from, to),
            (S::NotStarted, _)
                | (S::PaymentPending, S::Active | S::Canceled)
                | (S::InTrial, S::Active | S::Canceled | S::Expired)
                | (S::Active, S::Canceled)
        )
}

#[derive(Debug, Clone)]
enum Op {
    Provision {
        plan: usize,
        annual: bool,
        seats: u64,
        skip_trial: bool,
        resource: usize,
        later: bool,
    },
    Update {
        sub: usize,
        seats: u64,
        addons: usize,
        annual: Option<bool>,
        immediate: bool,
    },
    Cancel {
        sub: usize,
        timing: usize,
    },
    CancelScheduled {
        sub: usize,
    },
    Migrate {
        sub: usize,
        now: bool,
    },
    Transfer {
        sub: usize,
        resource: usize,
    },
    Usage {
        value: i64,
    },
    PaymentMethod(bool),
    Archive,
    Clock {
        hours: i64,
    },
}

const PLANS: [(&str, Option<u32>); 6] = [
    ("free", None),
    ("starter", None),
    ("pro", Some(1)),
    ("pro", Some(2)),
    ("ws-plus", None),
    ("ws-basic", None),
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        9 => (0..PLANS.len(), any::<bool>(), 1u64..15, any::<bool>(), 0usize..3, any::<bool>()).prop_map(
            |(plan, annual, seats, skip_trial, resource, later)| Op::Provision {
                plan, annual, seats, skip_trial, resource, later
            }
        ),
        9 => (0usize..6, 1u64..15, 0usize..4, proptest::option::of(any::<bool>()), any::<bool>()).prop_map(
            |(sub, seats, addons, annual, immediate)| Op::Update { sub, seats, addons, annual, immediate }
        ),
        3 => (0usize..6, 0usize..3).prop_map(|(sub, timing)| Op::Cancel { sub, timing }),
        3 => (0usize..6).prop_map(|sub| Op::CancelScheduled { sub }),
        3 => (0usize..6, any::<bool>()).prop_map(|(sub, now)| Op::Migrate { sub, now }),
        3 => (0usize..6, 0usize..3).prop_map(|(sub, resource)| Op::Transfer { sub, resource }),
        3 => (-50i64..500).prop_map(|value| Op::Usage { value }),
        3 => any::<bool>().prop_map(Op::PaymentMethod),
        1 => Just(Op::Archive),
        12 => (0i64..2000).prop_map(|hours| Op::Clock { hours }),
    ]
}

/// The id of the `n`-th subscription that has not ended (modulo their number), else of the
/// `n`-th of all, if any.
fn nth(state: &CustomerState, n: usize) -> Option<SubscriptionId> {
    let open: Vec<_> = state
        .subscriptions
        .iter()
        .filter(|s| !s.status.is_ended())
        .collect();
    let pool: Vec<_> = if open.is_empty() {
        state.subscriptions.iter().collect()
    } else {
        open
    };
    (!pool.is_empty()).then(|| pool[n % pool.len()].id.clone())
}

const ADDONS: [&[(&str, i64)]; 4] = [
    &[],
    &[("extra-projects", 2)],
    &[("priority-support", 1)],
    &[("priority-support", 1), ("audit-pack", 1)],
];

/// Runs `op` on `state` at `now`: the new state, or `None` when it failed (typed error).
fn step(
    catalog: &Catalog,
    state: &CustomerState,
    op: &Op,
    now: DateTime<Utc>,
) -> Option<CustomerState> {
    let settings = Settings::default();
    let redemptions = Redemptions::new();
    let mut next = state.clone();
    let ok = match op {
        Op::Provision {
            plan,
            annual,
            seats,
            skip_trial,
            resource,
            later,
        } => {
            let (plan, version) = PLANS[*plan];
            let mut input = json!({"customerId": "c1", "planId": plan,
                "billingPeriod": if *annual && plan != "ws-plus" { "ANNUALLY" } else { "MONTHLY" },
                "skipTrial": skip_trial});
            if let Some(v) = version {
                input["planVersion"] = json!(v);
            }
            if plan == "pro" {
                input["billableFeatures"] = json!([{"featureId": "seats", "quantity": seats}]);
            }
            if plan.starts_with("ws-") {
                input["resourceId"] = json!(format!("r{resource}"));
            }
            if *later {
                input["startDate"] = json!((now + TimeDelta::days(10)).to_rfc3339());
            }
            let request: ProvisionRequest = serde_json::from_value(input).unwrap();
            provision(catalog, state, &request, &redemptions, now, &settings)
                .map(|d| d.apply(&mut next, now))
                .is_ok()
        }
        Op::Update {
            sub,
            seats,
            addons,
            annual,
            immediate,
        } => {
            let id = nth(state, *sub)?;
            let mut input = json!({"subscriptionId": id.as_str(),
                "billableFeatures": [{"featureId": "seats", "quantity": seats}]});
            if state.subscription(id.as_str()).unwrap().plan_id().as_str() != "pro" {
                input = json!({"subscriptionId": id.as_str()});
            }
            let list: Vec<Value> = ADDONS[*addons]
                .iter()
                .map(|(a, q)| json!({"addonId": a, "quantity": q}))
                .collect();
            input["addons"] = json!(list);
            if let Some(annual) = annual {
                input["billingPeriod"] = json!(if *annual { "ANNUALLY" } else { "MONTHLY" });
            }
            if *immediate {
                input["scheduleStrategy"] = json!("IMMEDIATE");
            }
            let request: UpdateRequest = serde_json::from_value(input).unwrap();
            update_subscription(catalog, state, &request, &redemptions, now, &settings)
                .map(|d| d.apply(&mut next, now))
                .is_ok()
        }
        Op::Cancel { sub, timing } => {
            let id = nth(state, *sub)?;
            let timing = ["IMMEDIATE", "END_OF_BILLING_PERIOD", "SPECIFIC_DATE"][*timing];
            let request: CancelRequest = serde_json::from_value(json!({
                "subscriptionId": id.as_str(), "cancellationTime": timing,
                "endDate": (now + TimeDelta::days(5)).to_rfc3339()}))
            .unwrap();
            match cancel_subscription(catalog, state, &request, now, &settings) {
                Ok(d) => {
                    next = d.state;
                    true
                }
                Err(_) => false,
            }
        }
        Op::CancelScheduled { sub } => {
            let id = nth(state, *sub)?;
            let request = CancelScheduledRequest {
                subscription_id: id,
            };
            cancel_scheduled_updates(state, &request)
                .map(|d| d.apply(&mut next, now))
                .is_ok()
        }
        Op::Migrate { sub, now: at_once } => {
            let id = nth(state, *sub)?;
            let request: MigrateRequest =
                serde_json::from_value(json!({"subscriptionId": id.as_str(),
                "migrationTime": if *at_once { "IMMEDIATE" } else { "END_OF_BILLING_PERIOD" }}))
                .unwrap();
            migrate_subscription_to_latest(catalog, state, &request, &redemptions, now, &settings)
                .map(|d| d.apply(&mut next, now))
                .is_ok()
        }
        Op::Transfer { sub, resource } => {
            let id = nth(state, *sub)?;
            let request = TransferRequest {
                subscription_id: id,
                destination_resource_id: ResourceId::new(format!("r{resource}")),
            };
            transfer_subscription(catalog, state, &request, now)
                .map(|d| d.apply(&mut next, now))
                .is_ok()
        }
        Op::Usage { value } => {
            let request: ReportUsageRequest = serde_json::from_value(
                json!({"customerId": "c1", "featureId": "api-calls", "value": value}),
            )
            .unwrap();
            report_usage(catalog, &mut next, &request, now).is_ok()
        }
        Op::PaymentMethod(has) => {
            next.customer.has_payment_method = *has;
            match collect_pending_payments(catalog, &next, now, &settings) {
                Ok((after, _)) => {
                    next = after;
                    true
                }
                Err(_) => false,
            }
        }
        Op::Archive => match archive_customer(catalog, state, now, &settings) {
            Ok(d) => {
                next = d.state;
                true
            }
            Err(_) => false,
        },
        Op::Clock { .. } => true,
    };
    ok.then_some(next)
}

fn check(before: &CustomerState, after: &CustomerState) -> Result<(), TestCaseError> {
    // Subscriptions are never removed and move only as the model allows.
    let statuses: BTreeMap<&str, S> = after
        .subscriptions
        .iter()
        .map(|s| (s.id.as_str(), s.status))
        .collect();
    for sub in &before.subscriptions {
        let now = statuses.get(sub.id.as_str());
        prop_assert!(now.is_some(), "`{}` vanished", sub.id);
        let now = *now.unwrap();
        prop_assert!(
            allowed(sub.status, now),
            "`{}`: {:?} → {:?}",
            sub.id,
            sub.status,
            now
        );
    }
    // One live subscription of each kind per scope.
    let mut live: BTreeMap<(String, Option<String>, bool), usize> = BTreeMap::new();
    for sub in after.subscriptions.iter().filter(|s| s.status.is_live()) {
        let key = (
            sub.product.as_str().to_owned(),
            sub.resource.as_ref().map(|r| r.as_str().to_owned()),
            sub.is_trial,
        );
        *live.entry(key).or_default() += 1;
    }
    prop_assert!(live.values().all(|n| *n <= 1), "{live:?}");
    // Invoices are appended, never negative; the balance never goes below zero.
    prop_assert!(after.invoices.len() >= before.invoices.len());
    prop_assert_eq!(
        &after.invoices[..before.invoices.len()],
        &before.invoices[..]
    );
    for invoice in &after.invoices {
        prop_assert!(invoice.total >= Decimal::ZERO, "{invoice:?}");
        prop_assert!(invoice.discount_amount >= Decimal::ZERO);
    }
    prop_assert!(
        after
            .customer
            .credit_balance
            .values()
            .all(|b| *b >= Decimal::ZERO)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_keep_every_invariant(ops in proptest::collection::vec(op(), 1..40),
                                              a in 0i64..3000, b in 0i64..3000) {
        let catalog = catalog();
        let settings = Settings::default();
        let mut customer = Customer::new(CustomerId::new("c1"));
        customer.has_payment_method = true;
        let mut state = CustomerState::new(customer);
        let mut now: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        for op in &ops {
            if let Op::Clock { hours } = op {
                now += TimeDelta::hours(*hours);
            }
            let (moved, _) = advance(&catalog, &state, now, &settings).unwrap();
            check(&state, &moved)?;
            state = moved;
            let before = state.clone();
            match step(&catalog, &state, op, now) {
                Some(after) => {
                    check(&before, &after)?;
                    state = after;
                }
                None => prop_assert_eq!(&state, &before, "a failed {:?} changed the state", op),
            }
        }
        // Moving the clock in two steps equals moving it at once.
        let (first, second) = (now + TimeDelta::hours(a.min(b)), now + TimeDelta::hours(a.max(b)));
        let (mid, mut events) = advance(&catalog, &state, first, &settings).unwrap();
        let (two_steps, more) = advance(&catalog, &mid, second, &settings).unwrap();
        events.extend(more);
        let (one_step, all) = advance(&catalog, &state, second, &settings).unwrap();
        prop_assert_eq!(&two_steps, &one_step);
        prop_assert_eq!(events, all);
        check(&state, &one_step)?;
    }
}
