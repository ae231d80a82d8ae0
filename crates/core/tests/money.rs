//! Money of a decision: the published proration examples, discounts, tax, customer credit,
//! estimates equal to execution, and the proration laws.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::reference_catalog as reference;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::str::FromStr;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::estimate::{Estimate, estimate_subscription};
use tollgate_core::id::CustomerId;
use tollgate_core::invoice::{Invoice, LineKind};
use tollgate_core::money::{Currency, RoundingMode};
use tollgate_core::proration::{Fraction, ProrationEvent, ProrationPolicy, fraction, share};
use tollgate_core::provision::{ProvisionDecision, ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::{Catalog, ErrorCode};

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// A product with monthly flat-fee plans at the given prices, named `p<price>`.
fn flat_plans(prices: &[&str]) -> Catalog {
    let plans: Vec<Value> = prices
        .iter()
        .map(|p| json!({"id": format!("p{p}"), "productId": "app", "pricingType": "PAID",
                        "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": p, "currency": "USD"}]}))
        .collect();
    Catalog::from_json_value(&json!({"products": [{"id": "app"}], "plans": plans})).unwrap()
}

struct World {
    catalog: Catalog,
    state: CustomerState,
    settings: Settings,
    redemptions: Redemptions,
}

impl World {
    fn new(catalog: Catalog, settings: Settings) -> Self {
        let mut customer = Customer::new(CustomerId::new("c1"));
        customer.has_payment_method = true;
        Self {
            catalog,
            state: CustomerState::new(customer),
            settings,
            redemptions: Redemptions::new(),
        }
    }

    fn request(input: Value) -> ProvisionRequest {
        let mut input = input;
        input["customerId"] = json!("c1");
        serde_json::from_value(input).unwrap()
    }

    fn provision(&mut self, at: &str, input: Value) -> ProvisionDecision {
        let decision = provision(
            &self.catalog,
            &self.state,
            &Self::request(input),
            &self.redemptions,
            t(at),
            &self.settings,
        )
        .unwrap();
        decision.apply(&mut self.state, t(at));
        if let Some(code) = &decision.effects.redeemed_code {
            self.redemptions.record(code);
        }
        decision
    }

    fn estimate(&self, at: &str, input: Value) -> Result<Estimate, tollgate_core::Error> {
        estimate_subscription(
            &self.catalog,
            &self.state,
            &Self::request(input),
            &self.redemptions,
            t(at),
            &self.settings,
        )
    }

    fn invoice(&mut self, at: &str, input: Value) -> Invoice {
        self.provision(at, input).effects.invoice.unwrap()
    }
}

fn amounts(invoice: &Invoice) -> Vec<(LineKind, String)> {
    invoice
        .lines
        .iter()
        .map(|l| (l.kind, l.amount.to_string()))
        .collect()
}

fn settings(policy: ProrationPolicy, rounding: RoundingMode) -> Settings {
    Settings::new(true, policy, rounding)
}

#[test]
fn upgrade_halfway_through_a_thirty_day_period_credits_half_and_debits_half() {
    let mut w = World::new(flat_plans(&["10", "20"]), Settings::default());
    w.provision(
        "2025-04-01T00:00:00Z",
        json!({"planId": "p10", "billingPeriod": "MONTHLY", "subscriptionId": "a"}),
    );
    let invoice = w.invoice(
        "2025-04-16T00:00:00Z",
        json!({"planId": "p20", "billingPeriod": "MONTHLY", "subscriptionId": "b"}),
    );
    assert_eq!(
        amounts(&invoice),
        [
            (LineKind::ProrationCredit, "-5.00".to_owned()),
            (LineKind::ProrationDebit, "10.00".to_owned())
        ]
    );
    assert_eq!(invoice.total.to_string(), "5.00");
}

#[test]
fn stripe_credits_exact_seconds_of_unused_time() {
    let mut w = World::new(flat_plans(&["10.00", "20"]), Settings::default());
    w.provision(
        "2017-02-14T00:00:00Z",
        json!({"planId": "p10.00", "billingPeriod": "MONTHLY", "subscriptionId": "a"}),
    );
    let invoice = w.invoice(
        "2017-03-03T19:14:48Z",
        json!({"planId": "p20", "billingPeriod": "MONTHLY", "subscriptionId": "b"}),
    );
    assert_eq!(invoice.lines[0].kind, LineKind::ProrationCredit);
    assert_eq!(invoice.lines[0].amount.to_string(), "-3.64");
}

#[test]
fn kill_bill_credits_whole_days_with_the_policy_rounding() {
    for (rounding, expected) in [
        (RoundingMode::HalfUp, "-74.99"),
        (RoundingMode::HalfEven, "-74.98"),
    ] {
        let mut w = World::new(
            flat_plans(&["249.95", "500"]),
            settings(ProrationPolicy::KillBill, rounding),
        );
        w.provision(
            "2025-04-01T00:00:00Z",
            json!({"planId": "p249.95", "billingPeriod": "MONTHLY", "subscriptionId": "a"}),
        );
        // 9 of April's 30 days remain after the 22nd.
        let invoice = w.invoice(
            "2025-04-22T10:00:00Z",
            json!({"planId": "p500", "billingPeriod": "MONTHLY", "subscriptionId": "b"}),
        );
        assert_eq!(invoice.lines[0].amount.to_string(), expected);
    }
}

#[test]
fn scenario_04_estimate_equals_the_executed_upgrade() {
    let mut w = World::new(reference(), Settings::default());
    w.provision("2025-01-01T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s"}));
    let input = json!({"planId": "pro", "billingPeriod": "MONTHLY", "billableFeatures": [{"featureId": "seats", "quantity": 1}], "billingCycleAnchor": "UNCHANGED", "subscriptionId": "p"});
    let estimate = w.estimate("2025-01-10T08:30:00Z", input.clone()).unwrap();
    let proration = estimate.proration.unwrap();
    assert_eq!(
        (
            proration.credit.to_string(),
            proration.debit.to_string(),
            proration.net_amount.to_string()
        ),
        ("20.25".into(), "97.06".into(), "76.81".into())
    );
    assert_eq!(
        estimate.billing_period_range.unwrap().start,
        t("2025-01-10T08:30:00Z")
    );
    assert_eq!(
        estimate.billing_period_range.unwrap().end,
        t("2025-02-01T00:00:00Z")
    );
    assert_eq!(estimate.recurring.sub_total.to_string(), "139.00");
    let invoice = w.invoice("2025-01-10T08:30:00Z", input);
    assert_eq!(
        (estimate.now.sub_total, estimate.now.total),
        (invoice.sub_total, invoice.total)
    );
    assert_eq!(estimate.lines, invoice.lines);
}

#[test]
fn scenario_07_each_changed_component_is_prorated_and_rounded_on_its_own() {
    let mut w = World::new(reference(), Settings::default());
    let first = w.invoice("2025-01-01T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s",
        "addons": [{"addonId": "extra-projects", "quantity": 3}]}));
    assert_eq!(
        amounts(&first),
        [
            (LineKind::Charge, "29.00".to_owned()),
            (LineKind::Charge, "30.00".to_owned())
        ]
    );
    let invoice = w.invoice("2025-01-02T00:00:00Z", json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "p",
        "billableFeatures": [{"featureId": "seats", "quantity": 1}],
        "addons": [{"addonId": "priority-support"}, {"addonId": "audit-pack"}, {"addonId": "api-boost"}, {"addonId": "extra-projects", "quantity": 2}]}));
    let got: Vec<String> = invoice.lines.iter().map(|l| l.amount.to_string()).collect();
    assert_eq!(
        got,
        [
            "-28.06", "-29.03", "115.16", "19.35", "47.42", "24.19", "95.81", "19.35"
        ]
    );
    assert_eq!(invoice.total.to_string(), "264.19");
}

#[test]
fn an_add_on_kept_unchanged_gets_no_proration_lines() {
    let mut w = World::new(reference(), Settings::default());
    w.provision("2025-01-01T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s",
        "addons": [{"addonId": "extra-projects", "quantity": 2}]}));
    let invoice = w.invoice("2025-01-11T00:00:00Z", json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "p",
        "addons": [{"addonId": "extra-projects", "quantity": 2}]}));
    // starter's flat fee is credited; pro's flat fee and seats are debited; the add-on is untouched.
    assert_eq!(
        invoice.lines.iter().map(|l| l.kind).collect::<Vec<_>>(),
        [
            LineKind::ProrationCredit,
            LineKind::ProrationDebit,
            LineKind::ProrationDebit
        ]
    );
}

#[test]
fn scenario_09_coupons_and_tax() {
    let mut w = World::new(reference(), Settings::default());
    // NONPROFIT50 is for ngo-1 only.
    let err = w.estimate("2025-01-01T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "promotionCode": "NONPROFIT50"})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PromotionCodeNotForCustomer);
    let invoice = w.invoice("2025-01-01T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "promotionCode": "LAUNCH20", "subscriptionId": "s"}));
    assert_eq!(
        (
            invoice.sub_total.to_string(),
            invoice.discount_amount.to_string(),
            invoice.total.to_string()
        ),
        ("29.00".into(), "5.80".into(), "23.20".into())
    );
    assert_eq!(w.redemptions.count("LAUNCH20"), 1);
    let err = w
        .estimate(
            "2025-01-01T00:00:00Z",
            json!({"planId": "pro", "billingPeriod": "MONTHLY", "promotionCode": "LAUNCH20"}),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PromotionCodeCustomerNotFirstPurchase);

    // Exclusive 20 % after the discount.
    let mut taxed = World::new(reference(), Settings::default());
    taxed.state.customer.tax_percentage = Some(d("20"));
    let estimate = taxed.estimate("2025-01-01T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "promotionCode": "LAUNCH20"})).unwrap();
    assert_eq!(
        (
            estimate.now.total_excluding_tax.to_string(),
            estimate.now.tax.to_string(),
            estimate.now.total.to_string()
        ),
        ("23.20".into(), "4.64".into(), "27.84".into())
    );
    assert_eq!(estimate.recurring.total.to_string(), "27.84");
    let override_ = taxed.estimate("2025-01-01T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "taxPercentage": 10})).unwrap();
    assert_eq!(
        (
            override_.now.tax.to_string(),
            override_.now.total.to_string()
        ),
        ("2.90".into(), "31.90".into())
    );
    let invoice = taxed.invoice("2025-01-01T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "promotionCode": "LAUNCH20", "subscriptionId": "s"}));
    assert_eq!(
        (invoice.tax.to_string(), invoice.total.to_string()),
        ("4.64".into(), "27.84".into())
    );

    // Inclusive 20 %: the tax is inside the total.
    let mut inclusive = World::new(reference(), Settings::default());
    inclusive.state.customer.tax_percentage = Some(d("20"));
    inclusive.state.customer.tax_inclusive = true;
    let estimate = inclusive
        .estimate(
            "2025-01-01T00:00:00Z",
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true}),
        )
        .unwrap();
    assert_eq!(
        (
            estimate.now.total_excluding_tax.to_string(),
            estimate.now.tax.to_string(),
            estimate.now.total.to_string()
        ),
        ("24.17".into(), "4.83".into(), "29.00".into())
    );
}

#[test]
fn promotion_code_restrictions_have_their_codes() {
    let catalog = Catalog::from_json_value(&json!({
        "products": [{"id": "app"}],
        "plans": [
            {"id": "a", "productId": "app", "pricingType": "PAID", "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 10, "currency": "USD"}]},
            {"id": "b", "productId": "app", "pricingType": "PAID", "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 30, "currency": "USD"}],
             "localizedPrices": {"JP": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 3000, "currency": "JPY"}]}}
        ],
        "coupons": [
            {"id": "later", "type": "PERCENTAGE", "percentOff": 10, "duration": "ONCE", "promotionCodes": [{"code": "LATER", "activeFrom": "2026-01-01T00:00:00Z"}, {"code": "GONE", "expiresAt": "2025-01-01T00:00:00Z"}]},
            {"id": "plan-b", "type": "PERCENTAGE", "percentOff": 10, "duration": "ONCE", "promotionCodes": [{"code": "ONLYB", "planIds": ["b"]}, {"code": "ONE", "maxRedemptions": 1}]},
            {"id": "big", "type": "FIXED", "amountsOff": [{"amount": 15, "currency": "USD"}], "duration": "ONCE", "promotionCodes": [{"code": "MIN20", "minimumAmount": 20}, {"code": "FIFTEEN"}]}
        ]
    })).unwrap();
    let mut w = World::new(catalog, Settings::default());
    let code = |w: &World, plan: &str, promo: &str| {
        w.estimate(
            "2025-06-01T00:00:00Z",
            json!({"planId": plan, "billingPeriod": "MONTHLY", "promotionCode": promo}),
        )
        .err()
        .map(|e| e.code())
    };
    assert_eq!(
        code(&w, "a", "LATER"),
        Some(ErrorCode::PromotionCodeNotActive)
    );
    assert_eq!(
        code(&w, "a", "GONE"),
        Some(ErrorCode::PromotionCodeNotActive)
    );
    assert_eq!(
        code(&w, "a", "ONLYB"),
        Some(ErrorCode::PromotionCodeNotForPlan)
    );
    assert_eq!(code(&w, "b", "ONLYB"), None);
    assert_eq!(
        code(&w, "a", "MIN20"),
        Some(ErrorCode::PromotionCodeMinimumAmountNotReached)
    );
    assert_eq!(code(&w, "b", "MIN20"), None);
    w.state.customer.country = tollgate_core::id::CountryCode::parse("JP");
    assert_eq!(
        code(&w, "b", "FIFTEEN"),
        Some(ErrorCode::CouponCurrencyMismatch)
    );
    w.state.customer.country = None;
    // A fixed discount never exceeds what it covers.
    let invoice = w.invoice("2025-06-01T00:00:00Z", json!({"planId": "a", "billingPeriod": "MONTHLY", "promotionCode": "FIFTEEN", "subscriptionId": "s"}));
    assert_eq!(
        (
            invoice.discount_amount.to_string(),
            invoice.total.to_string()
        ),
        ("10.00".into(), "0.00".into())
    );
    // Max redemptions are global: the host's counts decide.
    w.redemptions.record("ONE");
    assert_eq!(
        code(&w, "b", "ONE"),
        Some(ErrorCode::PromotionCodeMaxRedemptionsReached)
    );
}

#[test]
fn a_credit_never_returns_more_than_the_discounted_charge() {
    let catalog = Catalog::from_json_value(&json!({
        "products": [{"id": "app"}],
        "plans": [
            {"id": "a", "productId": "app", "pricingType": "PAID", "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 100, "currency": "USD"}]},
            {"id": "b", "productId": "app", "pricingType": "PAID", "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 200, "currency": "USD"}]}
        ],
        "coupons": [{"id": "half", "type": "PERCENTAGE", "percentOff": 50, "duration": "ONCE", "promotionCodes": [{"code": "HALF"}]}]
    })).unwrap();
    let mut w = World::new(catalog, Settings::default());
    let first = w.invoice("2025-04-01T00:00:00Z", json!({"planId": "a", "billingPeriod": "MONTHLY", "promotionCode": "HALF", "subscriptionId": "s"}));
    assert_eq!(first.total.to_string(), "50.00");
    // Half of April remains: the credit is half of the 50.00 actually paid, and the ONCE
    // coupon, used up, does not discount the upgrade's debit.
    let invoice = w.invoice(
        "2025-04-16T00:00:00Z",
        json!({"planId": "b", "billingPeriod": "MONTHLY", "subscriptionId": "b"}),
    );
    assert_eq!(
        amounts(&invoice),
        [
            (LineKind::ProrationCredit, "-25.00".to_owned()),
            (LineKind::ProrationDebit, "100.00".to_owned())
        ]
    );
    assert_eq!(
        (
            invoice.discount_amount.to_string(),
            invoice.total.to_string()
        ),
        ("0.00".into(), "75.00".into())
    );
}

#[test]
fn customer_credit_is_consumed_before_charging_and_invoices_are_never_negative() {
    let mut w = World::new(flat_plans(&["100", "40"]), Settings::default());
    w.provision(
        "2025-04-01T00:00:00Z",
        json!({"planId": "p100", "billingPeriod": "MONTHLY", "subscriptionId": "a"}),
    );
    let down = w.invoice("2025-04-16T00:00:00Z", json!({"planId": "p40", "billingPeriod": "MONTHLY", "subscriptionId": "b", "scheduleStrategy": "IMMEDIATE"}));
    assert_eq!(
        (
            down.sub_total.to_string(),
            down.total.to_string(),
            down.credit_issued.to_string()
        ),
        ("-30.00".into(), "0.00".into(), "30.00".into())
    );
    let up = w.invoice(
        "2025-04-16T00:00:00Z",
        json!({"planId": "p100", "billingPeriod": "MONTHLY", "subscriptionId": "c"}),
    );
    // Back up: credit 20.00 for p40's rest, debit 50.00; net 30.00 consumed by the balance.
    assert_eq!(
        (
            up.sub_total.to_string(),
            up.credit_applied.to_string(),
            up.total.to_string()
        ),
        ("30.00".into(), "30.00".into(), "0.00".into())
    );
    assert!(w.state.customer.credit_balance.is_empty());
}

#[test]
fn create_prorations_keeps_the_lines_for_the_next_invoice_and_none_prorates_nothing() {
    let mut w = World::new(flat_plans(&["10", "20"]), Settings::default());
    w.provision(
        "2025-04-01T00:00:00Z",
        json!({"planId": "p10", "billingPeriod": "MONTHLY", "subscriptionId": "a"}),
    );
    let d = w.provision("2025-04-16T00:00:00Z", json!({"planId": "p20", "billingPeriod": "MONTHLY", "subscriptionId": "b", "prorationBehavior": "CREATE_PRORATIONS"}));
    assert!(d.effects.invoice.is_none());
    let pending: Vec<String> = w
        .state
        .subscription("b")
        .unwrap()
        .pending_lines
        .iter()
        .map(|l| l.amount.to_string())
        .collect();
    assert_eq!(pending, ["-5.00", "10.00"]);
    let mut w = World::new(flat_plans(&["10", "20"]), Settings::default());
    w.provision(
        "2025-04-01T00:00:00Z",
        json!({"planId": "p10", "billingPeriod": "MONTHLY", "subscriptionId": "a"}),
    );
    let d = w.provision("2025-04-16T00:00:00Z", json!({"planId": "p20", "billingPeriod": "MONTHLY", "subscriptionId": "b", "prorationBehavior": "NONE"}));
    assert!(d.effects.invoice.is_none());
    assert!(w.state.subscription("b").unwrap().pending_lines.is_empty());
}

#[test]
fn a_trial_estimate_charges_nothing_now_and_shows_the_first_paid_period() {
    let w = World::new(reference(), Settings::default());
    let e = w
        .estimate(
            "2025-01-01T00:00:00Z",
            json!({"planId": "starter", "billingPeriod": "MONTHLY"}),
        )
        .unwrap();
    assert_eq!(
        (e.now.sub_total.to_string(), e.now.total.to_string()),
        ("0.00".into(), "0.00".into())
    );
    let range = e.billing_period_range.unwrap();
    assert_eq!(
        (range.start, range.end),
        (t("2025-01-15T00:00:00Z"), t("2025-02-15T00:00:00Z"))
    );
    assert_eq!(e.recurring.sub_total.to_string(), "29.00");
    // Estimates need no payment method.
    let mut w = World::new(reference(), Settings::default());
    w.state.customer.has_payment_method = false;
    let e = w
        .estimate(
            "2025-01-01T00:00:00Z",
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true}),
        )
        .unwrap();
    assert_eq!(e.now.total.to_string(), "29.00");
}

// ---- properties ----

fn policy() -> impl Strategy<Value = ProrationPolicy> {
    prop::sample::select(vec![
        ProrationPolicy::Stripe,
        ProrationPolicy::KillBill,
        ProrationPolicy::Lago,
        ProrationPolicy::ThirtyDay,
    ])
}

fn zone() -> impl Strategy<Value = chrono_tz::Tz> {
    prop::sample::select(vec![
        chrono_tz::Tz::UTC,
        chrono_tz::Tz::America__New_York,
        chrono_tz::Tz::Asia__Kolkata,
        chrono_tz::Tz::Pacific__Kiritimati,
    ])
}

fn base() -> DateTime<Utc> {
    t("2025-01-01T00:00:00Z")
}

proptest! {
    #[test]
    fn the_fraction_is_in_the_unit_interval_and_full_at_the_start_and_empty_at_the_end(
        policy in policy(), zone in zone(), start in 0i64..400 * 86_400, len in 1i64..400 * 86_400, at in -10i64..500 * 86_400,
        cancel in any::<bool>(),
    ) {
        let from = base() + TimeDelta::seconds(start);
        let end = from + TimeDelta::seconds(len);
        let event = if cancel { ProrationEvent::Cancellation } else { ProrationEvent::Change };
        let f = fraction(policy, zone, from, base() + TimeDelta::seconds(at), end, event).unwrap();
        prop_assert!(f >= Decimal::ZERO && f <= Decimal::ONE);
        let at_start = fraction(policy, zone, from, from, end, event).unwrap();
        if policy == ProrationPolicy::Lago && cancel {
            // A cancellation counts its day as used, the first day too.
            let before = fraction(policy, zone, from, from - TimeDelta::seconds(1), end, event).unwrap();
            prop_assert_eq!(before, Decimal::ONE);
            prop_assert!(at_start < Decimal::ONE);
        } else {
            prop_assert_eq!(at_start, Decimal::ONE);
        }
        prop_assert_eq!(fraction(policy, zone, from, end, end, event).unwrap(), Decimal::ZERO);
    }
}

/// A span's whole: any length, or a short one whose halves and quarters make exact ties.
/// That `got`, rounded to `currency`'s minor unit, is `exact / scale` rounded once: within
/// half a minor unit, a tie going the rounding mode's way (`half_even`, else half up).
fn rounded_once(
    got: Decimal,
    exact: Decimal,
    scale: Decimal,
    currency: Currency,
    half_even: bool,
) -> Result<(), TestCaseError> {
    let back = got * scale;
    let half = Decimal::new(5, currency.minor_units() + 1) * scale;
    let off = (exact - back).abs();
    prop_assert!(off <= half, "{exact} / {scale} gave {got}");
    if off == half && !off.is_zero() {
        if half_even {
            prop_assert!(got.mantissa() % 2 == 0, "tie gave odd {got}");
        } else {
            prop_assert!(back.abs() > exact.abs(), "tie gave {got}, toward zero");
        }
    }
    Ok(())
}

fn whole() -> impl Strategy<Value = i64> {
    prop_oneof![
        1i64..40_000_000,
        prop::sample::select(vec![1i64, 2, 3, 4, 6, 8, 10, 16, 20, 40, 200]),
    ]
}

proptest! {
    /// A prorated amount is the exact product rounded once: within half a minor unit of
    /// `amount × remaining / whole`, and a tie goes the rounding mode's way.
    #[test]
    fn a_prorated_amount_is_the_exact_product_rounded_once(
        units in -100_000_000i64..100_000_000, places in 0u32..7, remaining in 0i64..40_000_000,
        whole in whole(), half_even in any::<bool>(),
        code in prop::sample::select(vec!["USD", "JPY", "KWD"]),
    ) {
        let amount = Decimal::new(units, places);
        let f = Fraction::new(remaining, whole);
        let currency = Currency::parse(code).unwrap();
        let mode = if half_even { RoundingMode::HalfEven } else { RoundingMode::HalfUp };
        let prorated = f.of(amount, currency, mode).unwrap();
        prop_assert_eq!(prorated.scale(), currency.minor_units());

        // Scaled by the denominator, everything below is an exact decimal.
        let exact = amount * Decimal::from(f.numerator());
        rounded_once(prorated, exact, Decimal::from(f.denominator()), currency, half_even)?;
    }
}

#[test]
fn a_share_of_a_discounted_charge_rounds_a_true_tie_as_a_tie() {
    // 10.007 charged, the invoice paid 8.766 of 13.149 (two thirds, a repeating decimal),
    // 21 of 28 days unused: exactly 5.0035, which HALF_UP rounds up and HALF_EVEN down.
    let kwd = Currency::parse("KWD").unwrap();
    let f = Fraction::new(21, 28);
    let share = |mode| {
        f.of_share(d("10.007"), d("8.766"), d("13.149"), kwd, mode)
            .unwrap()
    };
    assert_eq!(share(RoundingMode::HalfUp), d("5.004"));
    assert_eq!(share(RoundingMode::HalfEven), d("5.004"));
    let negative = f.of_share(
        d("-10.007"),
        d("8.766"),
        d("13.149"),
        kwd,
        RoundingMode::HalfUp,
    );
    assert_eq!(negative.unwrap(), d("-5.004"));
    // Nothing paid, nothing to credit; all of it paid, the fraction of the charge.
    assert_eq!(
        f.of_share(d("10.007"), d("0"), d("13.149"), kwd, RoundingMode::HalfUp)
            .unwrap(),
        d("0.000")
    );
    assert_eq!(
        f.of_share(
            d("10.007"),
            d("13.149"),
            d("13.149"),
            kwd,
            RoundingMode::HalfUp
        )
        .unwrap(),
        d("7.505")
    );
    assert!(
        f.of_share(d("10.007"), d("1"), d("0"), kwd, RoundingMode::HalfUp)
            .is_err()
    );
}

proptest! {
    /// The credit of a discounted charge is `charged × paid / billed × fraction`, exact,
    /// rounded once: within half a minor unit, a tie going the rounding mode's way, however
    /// `paid / billed` would be written as a decimal.
    #[test]
    fn a_share_of_a_discounted_charge_is_the_exact_product_rounded_once(
        charged_units in 0i64..100_000_000, places in 0u32..5,
        billed_units in 1i64..100_000_000, paid_permille in 0i64..=1000,
        remaining in 0i64..40_000_000, whole in whole(), half_even in any::<bool>(),
        code in prop::sample::select(vec!["USD", "JPY", "KWD"]),
    ) {
        let charged = Decimal::new(charged_units, places);
        let billed = Decimal::new(billed_units, places);
        let paid = Decimal::new(billed_units * paid_permille / 1000, places);
        let f = Fraction::new(remaining, whole);
        let currency = Currency::parse(code).unwrap();
        let mode = if half_even { RoundingMode::HalfEven } else { RoundingMode::HalfUp };
        let got = f.of_share(charged, paid, billed, currency, mode).unwrap();
        prop_assert_eq!(got.scale(), currency.minor_units());

        // Scaled by both denominators, everything below is an exact decimal.
        let scale = billed * Decimal::from(f.denominator());
        let exact = charged * paid * Decimal::from(f.numerator());
        rounded_once(got, exact, scale, currency, half_even)?;
    }
}

proptest! {
    /// Tax and every other `amount × n / d` is the exact quotient rounded once: within half
    /// a minor unit, a tie going the rounding mode's way.
    #[test]
    fn a_scaled_amount_is_the_exact_quotient_rounded_once(
        units in -100_000_000i64..100_000_000, places in 0u32..5,
        percent in 0i64..10_000, percent_places in 0u32..3, inclusive in any::<bool>(),
        half_even in any::<bool>(), code in prop::sample::select(vec!["USD", "JPY", "KWD"]),
    ) {
        let amount = Decimal::new(units, places);
        let rate = Decimal::new(percent, percent_places);
        let divisor = if inclusive { Decimal::ONE_HUNDRED + rate } else { Decimal::ONE_HUNDRED };
        let currency = Currency::parse(code).unwrap();
        let mode = if half_even { RoundingMode::HalfEven } else { RoundingMode::HalfUp };
        let got = tollgate_core::money::mul_div(amount, rate, divisor, currency, mode).unwrap();
        prop_assert_eq!(got.scale(), currency.minor_units());
        rounded_once(got, amount * rate, divisor, currency, half_even)?;
    }
}

proptest! {
    /// `mul_ratio` (whole-number factors, in 64 bits where they fit) gives exactly what
    /// `mul_div` gives, also for amounts finer than the currency and mantissas beyond 64 bits.
    #[test]
    fn a_ratio_of_whole_numbers_scales_as_a_ratio_of_decimals_does(
        mantissa in prop_oneof![
            3 => -100_000_000i128..100_000_000,
            1 => -(1i128 << 95)..(1i128 << 95),
            1 => prop::sample::select(vec![i128::from(i64::MAX), i128::from(i64::MIN), (1i128 << 70) + 1]),
        ],
        places in prop_oneof![3 => 0u32..3, 1 => 0u32..9],
        numerator in prop_oneof![3 => 0i64..40_000_000, 1 => any::<i64>()],
        // Small even denominators make ties, where the rounding modes differ.
        denominator in prop_oneof![
            2 => 1i64..40_000_000, 1 => any::<i64>(), 2 => prop::sample::select(vec![2i64, 4, 8, 20, 200]),
        ],
        half_even in any::<bool>(),
        code in prop::sample::select(vec!["USD", "JPY", "KWD", "CLF"]),
    ) {
        let amount = Decimal::from_i128_with_scale(mantissa, places);
        let currency = Currency::parse(code).unwrap();
        let mode = if half_even { RoundingMode::HalfEven } else { RoundingMode::HalfUp };
        let by_ratio = tollgate_core::money::mul_ratio(amount, numerator, denominator, currency, mode);
        let by_decimals = tollgate_core::money::mul_div(
            amount, Decimal::from(numerator), Decimal::from(denominator), currency, mode,
        );
        match (by_ratio, by_decimals) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a, b);
                prop_assert_eq!(a.scale(), b.scale());
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.code(), b.code()),
            (a, b) => prop_assert!(false, "{amount} × {numerator}/{denominator}: {a:?} against {b:?}"),
        }
    }
}

#[test]
fn a_lago_cancellation_at_the_period_start_counts_the_first_day_as_used() {
    // February 2025 touches 28 dates; cancelling at its first instant leaves 27 of them.
    let (from, end) = (t("2025-02-01T00:00:00Z"), t("2025-03-01T00:00:00Z"));
    let lago = |at: &str, event| {
        fraction(
            ProrationPolicy::Lago,
            chrono_tz::Tz::UTC,
            from,
            t(at),
            end,
            event,
        )
        .unwrap()
    };
    let cancel = ProrationEvent::Cancellation;
    assert_eq!(lago("2025-02-01T00:00:00Z", cancel), d("27") / d("28"));
    assert_eq!(lago("2025-02-01T01:00:00Z", cancel), d("27") / d("28"));
    assert_eq!(lago("2025-01-31T23:59:59Z", cancel), Decimal::ONE);
    // A change bills the change day to the new configuration: at the start, nothing is used.
    assert_eq!(
        lago("2025-02-01T00:00:00Z", ProrationEvent::Change),
        Decimal::ONE
    );
}

#[test]
fn a_tie_is_a_tie_however_the_fraction_would_be_written() {
    // 0.03 × 1/6 is exactly 0.005: 1/6 cut to 28 digits would have tipped it up.
    let usd = Currency::parse("USD").unwrap();
    let sixth = Fraction::new(1, 6);
    assert_eq!(
        sixth
            .of(d("0.03"), usd, RoundingMode::HalfEven)
            .unwrap()
            .to_string(),
        "0.00"
    );
    assert_eq!(
        sixth
            .of(d("0.03"), usd, RoundingMode::HalfUp)
            .unwrap()
            .to_string(),
        "0.01"
    );
    assert_eq!(
        sixth
            .of(d("-0.03"), usd, RoundingMode::HalfUp)
            .unwrap()
            .to_string(),
        "-0.01"
    );
    // Beyond 128 bits the product falls back to a decimal product, rounded as before.
    let huge = Decimal::MAX;
    let third = Fraction::new(1_000_000_000_000, 3_000_000_000_001);
    assert_eq!(
        third.of(huge, usd, RoundingMode::HalfUp).unwrap(),
        usd.round(huge * third.to_decimal().unwrap(), RoundingMode::HalfUp)
    );
    assert_eq!(
        Fraction::ONE
            .of(d("12.345"), usd, RoundingMode::HalfEven)
            .unwrap()
            .to_string(),
        "12.34"
    );
    assert_eq!(
        Fraction::ZERO
            .of(d("12.345"), usd, RoundingMode::HalfUp)
            .unwrap()
            .to_string(),
        "0.00"
    );
}

proptest! {
    /// The exact fraction and the decimal one are the same number, to the decimal's 28
    /// digits.
    #[test]
    fn the_share_is_the_fraction(
        policy in policy(), zone in zone(), start in 0i64..400 * 86_400, len in 1i64..400 * 86_400, at in -10i64..500 * 86_400,
        cancel in any::<bool>(),
    ) {
        let from = base() + TimeDelta::seconds(start);
        let end = from + TimeDelta::seconds(len);
        let at = base() + TimeDelta::seconds(at);
        let event = if cancel { ProrationEvent::Cancellation } else { ProrationEvent::Change };
        let exact = share(policy, zone, from, at, end, event).unwrap();
        prop_assert!(exact.numerator() >= 0 && exact.numerator() <= exact.denominator());
        prop_assert_eq!(exact.to_decimal().unwrap(), fraction(policy, zone, from, at, end, event).unwrap());
    }
}

fn price() -> impl Strategy<Value = String> {
    (1u32..100_000).prop_map(|cents| (Decimal::from(cents) / Decimal::ONE_HUNDRED).to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A credit never exceeds what was charged for the period; A→B→C at one instant
    /// charges what A→C charges there; and over a period with changes at t1 ≤ t2 the
    /// customer pays exactly A for `[start, t1)`, B for `[t1, t2)` and C for `[t2, end)`
    /// (measured by the policy), within one minor unit per line.
    #[test]
    fn changes_compose_and_credits_stay_within_what_was_charged(
        prices in prop::collection::vec(price(), 3), policy in policy(),
        t1 in 1i64..29 * 86_400, gap in prop::sample::select(vec![0i64, 1, 3_600, 86_400, 5 * 86_400]),
    ) {
        let plans: Vec<&str> = prices.iter().map(String::as_str).collect();
        prop_assume!(plans[0] != plans[1] && plans[1] != plans[2] && plans[0] != plans[2]);
        let s = settings(policy, RoundingMode::HalfUp);
        let start = t("2025-04-01T00:00:00Z");
        let end = t("2025-05-01T00:00:00Z");
        let at = |secs: i64| (start + TimeDelta::seconds(secs)).to_rfc3339();
        let req = |p: &str, id: &str| json!({"planId": format!("p{p}"), "billingPeriod": "MONTHLY", "subscriptionId": id, "scheduleStrategy": "IMMEDIATE"});
        let t2 = (t1 + gap).min(29 * 86_400);
        let net = |i: &Option<Invoice>| i.as_ref().map_or(Decimal::ZERO, |i| i.sub_total);
        let lines = |i: &Option<Invoice>| i.as_ref().map_or(0, |i| i.lines.len());

        let mut abc = World::new(flat_plans(&plans), s);
        let charged = abc.invoice(&at(0), req(plans[0], "a")).total;
        let ab = abc.provision(&at(t1), req(plans[1], "b")).effects.invoice;
        if let Some(inv) = &ab {
            let credit: Decimal = inv.lines.iter().filter(|l| l.kind == LineKind::ProrationCredit).map(|l| -l.amount).sum();
            prop_assert!(credit <= charged);
        }
        let bc = abc.provision(&at(t2), req(plans[2], "c")).effects.invoice;
        let tolerance = Decimal::new(1, 2) * Decimal::from(1 + lines(&ab) + lines(&bc));

        let f = |secs: i64| fraction(policy, chrono_tz::Tz::UTC, start, start + TimeDelta::seconds(secs), end, ProrationEvent::Change).unwrap();
        let (f1, f2) = (f(t1), f(t2));
        let price = |i: usize| d(plans[i]);
        let used = price(0) * (Decimal::ONE - f1) + price(1) * (f1 - f2) + price(2) * f2;
        let paid = charged + net(&ab) + net(&bc);
        prop_assert!((paid - used).abs() <= tolerance, "paid {paid}, used {used}");

        if gap == 0 {
            let mut ac = World::new(flat_plans(&plans), s);
            ac.invoice(&at(0), req(plans[0], "a"));
            let direct = ac.provision(&at(t2), req(plans[2], "c")).effects.invoice;
            let tolerance = Decimal::new(1, 2) * Decimal::from(lines(&ab) + lines(&bc) + lines(&direct));
            prop_assert!((net(&ab) + net(&bc) - net(&direct)).abs() <= tolerance,
                "A→B→C {} + {} vs A→C {}", net(&ab), net(&bc), net(&direct));
        }
    }

    /// The estimate of a request equals the invoice executing it, and no amount has more
    /// decimal places than the currency allows.
    #[test]
    fn estimates_equal_execution(
        first in prop::sample::select(vec!["starter", "pro"]), second in prop::sample::select(vec!["starter", "pro"]),
        seats in 1i64..30, extra in 0i64..4, at in 0i64..30 * 86_400, anchor_now in any::<bool>(),
        promo in any::<bool>(), tax in prop::option::of(0u32..30), inclusive in any::<bool>(),
    ) {
        let mut w = World::new(reference(), Settings::default());
        w.state.customer.tax_percentage = tax.map(Decimal::from);
        w.state.customer.tax_inclusive = inclusive;
        let request = |plan: &str, id: &str, promo: bool| {
            let mut input = json!({"planId": plan, "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": id, "scheduleStrategy": "IMMEDIATE"});
            if plan == "pro" { input["billableFeatures"] = json!([{"featureId": "seats", "quantity": seats}]); }
            if extra > 0 { input["addons"] = json!([{"addonId": "extra-projects", "quantity": extra}]); }
            if promo { input["promotionCode"] = json!("LAUNCH20"); }
            input
        };
        w.provision("2025-01-01T00:00:00Z", request(first, "a", promo));
        let mut change = request(second, "b", false);
        if anchor_now { change["billingCycleAnchor"] = json!("NOW"); }
        let when = (t("2025-01-01T00:00:00Z") + TimeDelta::seconds(at)).to_rfc3339();
        let estimate = w.estimate(&when, change.clone()).unwrap();
        let decision = w.provision(&when, change);
        match decision.effects.invoice {
            Some(invoice) => {
                prop_assert_eq!(&estimate.lines, &invoice.lines);
                prop_assert_eq!(estimate.now.sub_total, invoice.sub_total);
                prop_assert_eq!(estimate.now.discount_amount, invoice.discount_amount);
                prop_assert_eq!(estimate.now.tax, invoice.tax);
                prop_assert_eq!(estimate.now.total, invoice.total);
                for amount in invoice.lines.iter().map(|l| l.amount).chain([invoice.sub_total, invoice.tax, invoice.total, invoice.discount_amount]) {
                    prop_assert!(amount.scale() <= 2, "{amount}");
                }
            }
            None => prop_assert!(estimate.now.total.is_zero()),
        }
    }
}

#[test]
fn a_plan_change_bills_the_replaced_subscriptions_waiting_prorations_and_clears_them() {
    let mut w = World::new(flat_plans(&["10", "20", "30"]), Settings::default());
    w.provision(
        "2025-04-01T00:00:00Z",
        json!({"planId": "p10", "billingPeriod": "MONTHLY", "subscriptionId": "a"}),
    );
    w.provision("2025-04-16T00:00:00Z", json!({"planId": "p20", "billingPeriod": "MONTHLY", "subscriptionId": "b", "prorationBehavior": "CREATE_PRORATIONS"}));
    assert_eq!(w.state.subscription("b").unwrap().pending_lines.len(), 2);
    let d = w.provision(
        "2025-04-16T00:00:00Z",
        json!({"planId": "p30", "billingPeriod": "MONTHLY", "subscriptionId": "c"}),
    );
    let billed: Vec<String> = d
        .effects
        .invoice
        .unwrap()
        .lines
        .iter()
        .map(|l| l.amount.to_string())
        .collect();
    // b's credit for its unused time and the credit b kept waiting, then c's debit and the
    // debit b kept waiting (FORMAT.md §6 order).
    assert_eq!(billed, ["-10.00", "-5.00", "15.00", "10.00"]);
    let b = w.state.subscription("b").unwrap();
    assert!(b.status.is_ended());
    assert!(
        b.pending_lines.is_empty(),
        "the ended record keeps no lines the change billed"
    );
}

/// Monthly flat-fee plans named `p<price>` as in [`flat_plans`], and a `FOREVER` coupon of
/// `percent` % redeemed by the code `OFF`.
fn flat_plans_with_coupon(prices: &[&str], percent: u32) -> Catalog {
    let plans: Vec<Value> = prices
        .iter()
        .map(|p| json!({"id": format!("p{p}"), "productId": "app", "pricingType": "PAID",
                        "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": p, "currency": "USD"}]}))
        .collect();
    Catalog::from_json_value(&json!({
        "products": [{"id": "app"}],
        "plans": plans,
        "coupons": [{"id": "off", "type": "PERCENTAGE", "percentOff": percent, "duration": "FOREVER", "promotionCodes": [{"code": "OFF"}]}]
    }))
    .unwrap()
}

fn behavior() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["INVOICE_IMMEDIATELY", "CREATE_PRORATIONS"])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// With a percentage coupon, A→B→C and a cancellation inside one period cost the
    /// customer the coupon's share of exactly A for `[start, t1)`, B for `[t1, t2)` and C
    /// for `[t2, t3)`, within one minor unit per line and per discount, whether each change
    /// invoices its prorations at once or keeps them waiting for the next invoice: a credit
    /// for a debit, waiting or billed, never returns more than the coupon left to pay.
    #[test]
    fn a_discount_composes_over_changes_whatever_their_proration_behavior(
        prices in prop::collection::vec(price(), 3), percent in prop::sample::select(vec![10u32, 25, 50, 100]),
        policy in policy(), first in behavior(), second in behavior(),
        t1 in 1i64..24 * 86_400, gap in 0i64..3 * 86_400, rest in 1i64..3 * 86_400,
    ) {
        let plans: Vec<&str> = prices.iter().map(String::as_str).collect();
        prop_assume!(plans[0] != plans[1] && plans[1] != plans[2] && plans[0] != plans[2]);
        let s = settings(policy, RoundingMode::HalfUp);
        let start = t("2025-04-01T00:00:00Z");
        let end = t("2025-05-01T00:00:00Z");
        // Every instant stays inside April: t3 < 24 + 3 + 3 days.
        let (t2, t3) = (t1 + gap, t1 + gap + rest);
        let at = |secs: i64| (start + TimeDelta::seconds(secs)).to_rfc3339();
        let change = |p: &str, id: &str, behavior: &str| json!({"planId": format!("p{p}"), "billingPeriod": "MONTHLY", "subscriptionId": id, "scheduleStrategy": "IMMEDIATE", "prorationBehavior": behavior});

        let mut w = World::new(flat_plans_with_coupon(&plans, percent), s);
        w.provision(&at(0), json!({"planId": format!("p{}", plans[0]), "billingPeriod": "MONTHLY", "subscriptionId": "a", "promotionCode": "OFF"}));
        w.provision(&at(t1), change(plans[1], "b", first));
        w.provision(&at(t2), change(plans[2], "c", second));
        let request = serde_json::from_value(json!({"subscriptionId": "c", "cancellationTime": "IMMEDIATE"})).unwrap();
        let canceled = tollgate_core::cancellation::cancel_subscription(&w.catalog, &w.state, &request, t(&at(t3)), &w.settings).unwrap();
        w.state = canceled.state;

        let f = |secs: i64, event| fraction(policy, chrono_tz::Tz::UTC, start, start + TimeDelta::seconds(secs), end, event).unwrap();
        let (f1, f2, f3) = (f(t1, ProrationEvent::Change), f(t2, ProrationEvent::Change), f(t3, ProrationEvent::Cancellation));
        let price = |i: usize| d(plans[i]);
        let used = price(0) * (Decimal::ONE - f1) + price(1) * (f1 - f2) + price(2) * (f2 - f3);
        let kept = Decimal::ONE - Decimal::from(percent) / Decimal::ONE_HUNDRED;
        let paid: Decimal = w.state.invoices.iter().map(|i| i.sub_total - i.discount_amount).sum();
        let lines: usize = w.state.invoices.iter().map(|i| i.lines.len() + 1).sum();
        let tolerance = Decimal::new(1, 2) * Decimal::from(lines);
        prop_assert!((paid - used * kept).abs() <= tolerance, "paid {paid}, owed {}", used * kept);
    }
}

#[test]
fn the_clock_gives_no_discount_rather_than_stopping_on_a_coupon_without_the_currency() {
    let catalog = |amounts: Value| {
        Catalog::from_json_value(&json!({
            "products": [{"id": "app"}],
            "plans": [{"id": "p", "productId": "app", "pricingType": "PAID", "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 40, "currency": "EUR"}]}],
            "coupons": [{"id": "fix", "type": "FIXED", "amountsOff": amounts, "duration": "FOREVER", "promotionCodes": [{"code": "FIX"}]}]
        }))
        .unwrap()
    };
    let mut w = World::new(
        catalog(json!([{"amount": 5, "currency": "EUR"}, {"amount": 5, "currency": "USD"}])),
        Settings::default(),
    );
    let first = w.invoice(
        "2025-01-01T00:00:00Z",
        json!({"planId": "p", "billingPeriod": "MONTHLY", "promotionCode": "FIX", "subscriptionId": "s"}),
    );
    assert_eq!(first.discount_amount.to_string(), "5.00");
    // The host's catalog now gives the coupon a USD amount only: renewals of the EUR
    // subscription go on, without a discount.
    w.catalog = catalog(json!([{"amount": 5, "currency": "USD"}]));
    let (state, _) = tollgate_core::lifecycle::advance(
        &w.catalog,
        &w.state,
        t("2025-03-02T00:00:00Z"),
        &w.settings,
    )
    .unwrap();
    let renewals: Vec<(String, String)> = state.invoices[1..]
        .iter()
        .map(|i| (i.discount_amount.to_string(), i.total.to_string()))
        .collect();
    assert_eq!(
        renewals,
        [
            ("0.00".into(), "40.00".into()),
            ("0.00".into(), "40.00".into())
        ]
    );
}
