//! Usage-based prices on the clock (FORMAT.md §6 "Invoices and money"): the closing
//! period's usage billed at renewal, at cancellation and when a subscription is replaced,
//! whatever the reset windows; `USAGE_RESET` events; what a reset would remove.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tollgate_core::Catalog;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::{CustomerId, ProductId, ResourceId};
use tollgate_core::invoice::{Invoice, InvoiceReason, LineKind};
use tollgate_core::lifecycle::{Event, EventKind, advance};
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::{CancelReason, SubscriptionStatus};
use tollgate_core::update::{TransferRequest, transfer_subscription};
use tollgate_core::usage::{
    PlanChange, ReportUsageRequest, report_usage, reset_usage_on_change, usage_resets,
};

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// `metered`: 10 USD a month plus API calls at 0.002 each and storage at 5 USD per started
/// 100 GB; `daily` and `yearly` price API calls whose window is a day or a year; `basic`
/// and `free` have no usage price; `site` (API calls) and `site-storage` (storage, as
/// `metered`) are per resource.
fn catalog() -> Catalog {
    Catalog::from_json_value(&json!({
        "features": [
            {"id": "api-calls", "type": "NUMBER", "meter": "INCREMENTAL"},
            {"id": "storage-gb", "type": "NUMBER", "meter": "FLUCTUATING"}
        ],
        "products": [
            {"id": "app", "multipleSubscriptions": false,
             "journey": {"startSetup": "PLAN_SELECTION", "endSetup": "CANCEL_SUBSCRIPTION",
                         "downgradeStrategy": "END_OF_BILLING_PERIOD",
                         "usageResetOnChange": "ALWAYS_RESET"}},
            {"id": "sites", "multipleSubscriptions": true,
             "journey": {"startSetup": "PLAN_SELECTION", "endSetup": "CANCEL_SUBSCRIPTION"}}
        ],
        "plans": [
            {"id": "free", "productId": "app", "version": 1, "pricingType": "FREE",
             "entitlements": [{"featureId": "api-calls", "usageLimit": 100, "resetPeriod": "MONTH"}]},
            {"id": "basic", "productId": "app", "version": 1, "pricingType": "PAID",
             "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 5, "currency": "USD"}],
             "entitlements": [{"featureId": "api-calls", "usageLimit": 1000, "resetPeriod": "MONTH"}]},
            {"id": "metered", "productId": "app", "version": 1, "pricingType": "PAID",
             "prices": [
                 {"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 10, "currency": "USD"},
                 {"billingPeriod": "MONTHLY", "model": "USAGE_BASED", "featureId": "api-calls",
                  "unitPrice": "0.002", "currency": "USD"},
                 {"billingPeriod": "MONTHLY", "model": "USAGE_BASED", "featureId": "storage-gb",
                  "blockSize": 100, "unitPrice": 5, "currency": "USD"}
             ],
             "entitlements": [
                 {"featureId": "api-calls", "hasUnlimitedUsage": true, "resetPeriod": "MONTH"},
                 {"featureId": "storage-gb", "hasUnlimitedUsage": true}
             ]},
            {"id": "daily", "productId": "app", "version": 1, "pricingType": "PAID",
             "prices": [
                 {"billingPeriod": "MONTHLY", "model": "USAGE_BASED", "featureId": "api-calls",
                  "tiersMode": "GRADUATED",
                  "tiers": [{"upTo": 100, "unitPrice": 0}, {"unitPrice": "0.01"}], "currency": "USD"}
             ],
             "entitlements": [{"featureId": "api-calls", "usageLimit": 1000, "hasSoftLimit": true,
                               "resetPeriod": "DAY"}]},
            {"id": "yearly", "productId": "app", "version": 1, "pricingType": "PAID",
             "prices": [
                 {"billingPeriod": "MONTHLY", "model": "USAGE_BASED", "featureId": "api-calls",
                  "unitPrice": "0.01", "currency": "USD"}
             ],
             "entitlements": [{"featureId": "api-calls", "hasUnlimitedUsage": true, "resetPeriod": "YEAR"}]},
            {"id": "site", "productId": "sites", "version": 1, "pricingType": "PAID",
             "prices": [
                 {"billingPeriod": "MONTHLY", "model": "USAGE_BASED", "featureId": "api-calls",
                  "unitPrice": "0.01", "currency": "USD"}
             ],
             "entitlements": [{"featureId": "api-calls", "hasUnlimitedUsage": true, "resetPeriod": "MONTH"}]},
            {"id": "site-storage", "productId": "sites", "version": 1, "pricingType": "PAID",
             "prices": [
                 {"billingPeriod": "MONTHLY", "model": "USAGE_BASED", "featureId": "storage-gb",
                  "blockSize": 100, "unitPrice": 5, "currency": "USD"}
             ],
             "entitlements": [{"featureId": "storage-gb", "hasUnlimitedUsage": true}]}
        ]
    }))
    .unwrap()
}

struct World {
    catalog: Catalog,
    state: CustomerState,
    now: DateTime<Utc>,
    events: Vec<Event>,
}

impl World {
    fn new() -> Self {
        let mut customer = Customer::new(CustomerId::new("c1"));
        customer.has_payment_method = true;
        Self {
            catalog: catalog(),
            state: CustomerState::new(customer),
            now: t("2025-01-01T00:00:00Z"),
            events: Vec::new(),
        }
    }

    /// Moves the clock to `when`, keeping the events.
    fn at(&mut self, when: &str) {
        let (state, events) =
            advance(&self.catalog, &self.state, t(when), &Settings::default()).unwrap();
        self.state = state;
        self.events.extend(events);
        self.now = t(when);
    }

    fn provision(&mut self, when: &str, input: Value) {
        self.at(when);
        let mut input = input;
        input["customerId"] = json!("c1");
        let request: ProvisionRequest = serde_json::from_value(input).unwrap();
        provision(
            &self.catalog,
            &self.state,
            &request,
            &Redemptions::new(),
            self.now,
            &Settings::default(),
        )
        .unwrap()
        .apply(&mut self.state, self.now);
    }

    fn report(&mut self, when: &str, input: Value) -> u64 {
        self.at(when);
        let mut input = input;
        input["customerId"] = json!("c1");
        let request: ReportUsageRequest = serde_json::from_value(input).unwrap();
        report_usage(&self.catalog, &mut self.state, &request, self.now)
            .unwrap()
            .current_usage
    }

    fn transfer(&mut self, when: &str, subscription: &str, to: &str) {
        self.at(when);
        let request: TransferRequest = serde_json::from_value(
            json!({"subscriptionId": subscription, "destinationResourceId": to}),
        )
        .unwrap();
        transfer_subscription(&self.catalog, &self.state, &request, self.now)
            .unwrap()
            .apply(&mut self.state, self.now);
    }

    fn invoices_at(&self, when: &str) -> Vec<&Invoice> {
        self.state
            .invoices
            .iter()
            .filter(|i| i.issued_at == t(when))
            .collect()
    }

    fn only_invoice_at(&self, when: &str) -> &Invoice {
        let invoices = self.invoices_at(when);
        assert_eq!(invoices.len(), 1, "invoices at {when}: {invoices:#?}");
        invoices[0]
    }
}

/// (kind, quantity, unit price, amount, period start, period end) of each line.
fn lines(invoice: &Invoice) -> Vec<(LineKind, u64, String, String, String, String)> {
    invoice
        .lines
        .iter()
        .map(|l| {
            (
                l.kind,
                l.quantity,
                l.unit_price.normalize().to_string(),
                l.amount.to_string(),
                l.period.start.format("%m-%d").to_string(),
                l.period.end.format("%m-%d").to_string(),
            )
        })
        .collect()
}

fn line(
    kind: LineKind,
    quantity: u64,
    unit_price: &str,
    amount: &str,
    from: &str,
    to: &str,
) -> (LineKind, u64, String, String, String, String) {
    (
        kind,
        quantity,
        unit_price.to_owned(),
        amount.to_owned(),
        from.to_owned(),
        to.to_owned(),
    )
}

#[test]
fn a_renewal_bills_the_closing_period_s_usage_after_the_charges() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "metered", "billingPeriod": "MONTHLY", "subscriptionId": "s"}),
    );
    w.report(
        "2025-01-10T00:00:00Z",
        json!({"featureId": "api-calls", "value": 1000}),
    );
    w.report(
        "2025-01-11T00:00:00Z",
        json!({"featureId": "api-calls", "value": 501}),
    );
    // Storage is a level: its highest level in the period is billed, in started blocks.
    w.report(
        "2025-01-12T00:00:00Z",
        json!({"featureId": "storage-gb", "value": 250, "updateBehavior": "SET"}),
    );
    w.report(
        "2025-01-20T00:00:00Z",
        json!({"featureId": "storage-gb", "value": 120, "updateBehavior": "SET"}),
    );
    w.at("2025-02-01T00:00:00Z");
    let renewal = w.only_invoice_at("2025-02-01T00:00:00Z");
    assert_eq!(renewal.reason, InvoiceReason::BillingCycle);
    assert_eq!(
        lines(renewal),
        [
            line(LineKind::Charge, 1, "10", "10.00", "02-01", "03-01"),
            // 1501 × 0.002 = 3.002, rounded on its own line.
            line(LineKind::Usage, 1501, "0.002", "3.00", "01-01", "02-01"),
            line(LineKind::Usage, 3, "5", "15.00", "01-01", "02-01"),
        ]
    );
    assert_eq!(renewal.total.to_string(), "28.00");
    // Nothing reported in February: no API-call line (zero lines are not written), and
    // storage is billed at the level it held all month.
    w.at("2025-03-01T00:00:00Z");
    assert_eq!(
        lines(w.only_invoice_at("2025-03-01T00:00:00Z")),
        [
            line(LineKind::Charge, 1, "10", "10.00", "03-01", "04-01"),
            line(LineKind::Usage, 2, "5", "10.00", "02-01", "03-01"),
        ]
    );
}

#[test]
fn a_daily_reset_window_bills_every_unit_of_the_month() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "daily", "billingPeriod": "MONTHLY", "subscriptionId": "s"}),
    );
    assert!(
        w.state.invoices.is_empty(),
        "a usage-only plan charges nothing up front"
    );
    for (day, calls) in [("02", 100), ("03", 200), ("31", 50)] {
        w.report(
            &format!("2025-01-{day}T12:00:00Z"),
            json!({"featureId": "api-calls", "value": calls}),
        );
    }
    // Only the last day's window is still counted for the limit ...
    assert_eq!(
        w.state
            .usage
            .current(None, "api-calls", t("2025-01-31T13:00:00Z")),
        50
    );
    w.at("2025-02-01T00:00:00Z");
    // ... but the month's 350 calls are billed: 100 free, 250 at 0.01.
    let renewal = w.only_invoice_at("2025-02-01T00:00:00Z");
    assert_eq!(
        lines(renewal),
        [line(
            LineKind::Usage,
            350,
            "0.0071428571428571428571428571",
            "2.50",
            "01-01",
            "02-01"
        )]
    );
}

#[test]
fn a_yearly_reset_window_bills_each_month_only_what_it_added() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "yearly", "billingPeriod": "MONTHLY", "subscriptionId": "s"}),
    );
    w.report(
        "2025-01-15T00:00:00Z",
        json!({"featureId": "api-calls", "value": 100}),
    );
    w.report(
        "2025-02-15T00:00:00Z",
        json!({"featureId": "api-calls", "value": 30}),
    );
    // A correction lowers the month's usage (130 → 120 counted in the window).
    let counted = w.report(
        "2025-02-20T00:00:00Z",
        json!({"featureId": "api-calls", "value": 120, "updateBehavior": "SET"}),
    );
    assert_eq!(counted, 120);
    w.at("2025-03-01T00:00:00Z");
    let amounts: Vec<String> = w
        .state
        .invoices
        .iter()
        .map(|i| format!("{} {}", i.issued_at.format("%m-%d"), i.total))
        .collect();
    assert_eq!(amounts, ["02-01 1.00", "03-01 0.20"]);
}

#[test]
fn usage_without_a_billing_subscription_is_never_billed() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "metered", "billingPeriod": "MONTHLY", "subscriptionId": "trial",
               "trialOverride": {"isTrial": true, "trialEndDate": "2025-01-15T00:00:00Z"}}),
    );
    w.report(
        "2025-01-05T00:00:00Z",
        json!({"featureId": "api-calls", "value": 5000}),
    );
    w.at("2025-01-15T00:00:00Z");
    assert_eq!(
        w.state.subscription("trial").unwrap().status,
        SubscriptionStatus::Active
    );
    assert_eq!(
        lines(w.only_invoice_at("2025-01-15T00:00:00Z")),
        [line(LineKind::Charge, 1, "10", "10.00", "01-15", "02-15")]
    );
    w.report(
        "2025-01-20T00:00:00Z",
        json!({"featureId": "api-calls", "value": 500}),
    );
    w.at("2025-02-15T00:00:00Z");
    // The 5000 calls of the trial stay free; the 500 after the conversion are billed.
    assert_eq!(
        lines(w.only_invoice_at("2025-02-15T00:00:00Z")),
        [
            line(LineKind::Charge, 1, "10", "10.00", "02-15", "03-15"),
            line(LineKind::Usage, 500, "0.002", "1.00", "01-15", "02-15"),
        ]
    );
}

#[test]
fn a_cancellation_bills_the_usage_so_far_on_its_cancellation_invoice() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "metered", "billingPeriod": "MONTHLY", "subscriptionId": "s"}),
    );
    w.report(
        "2025-01-05T00:00:00Z",
        json!({"featureId": "api-calls", "value": 2500}),
    );
    {
        let s = w.state.subscription_mut("s").unwrap();
        s.cancellation_date = Some(t("2025-01-21T06:00:00Z"));
        s.pending_cancel_reason = Some(CancelReason::ScheduledCancellation);
        s.credit_on_cancel = true;
    }
    w.at("2025-01-21T06:00:00Z");
    let invoice = w.only_invoice_at("2025-01-21T06:00:00Z");
    assert_eq!(invoice.reason, InvoiceReason::Cancellation);
    // 10 × 928,800 / 2,678,400 s = 3.4677… unused; 2500 × 0.002 = 5 for the time used.
    assert_eq!(
        lines(invoice),
        [
            line(
                LineKind::ProrationCredit,
                1,
                "10",
                "-3.47",
                "01-21",
                "02-01"
            ),
            line(LineKind::Usage, 2500, "0.002", "5.00", "01-01", "01-21"),
        ]
    );
    assert_eq!(invoice.total.to_string(), "1.53");
    let s = w.state.subscription("s").unwrap();
    assert_eq!(s.cancel_reason, Some(CancelReason::ScheduledCancellation));
    // Nothing is billed twice: the ended subscription never renews.
    w.at("2025-03-01T00:00:00Z");
    assert_eq!(w.state.invoices.len(), 2);
}

#[test]
fn a_cancellation_at_the_period_end_bills_usage_without_credit() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "metered", "billingPeriod": "MONTHLY", "subscriptionId": "s"}),
    );
    w.report(
        "2025-01-05T00:00:00Z",
        json!({"featureId": "api-calls", "value": 1000}),
    );
    {
        let s = w.state.subscription_mut("s").unwrap();
        s.cancellation_date = Some(t("2025-02-01T00:00:00Z"));
        s.pending_cancel_reason = Some(CancelReason::ScheduledCancellation);
    }
    w.at("2025-02-01T00:00:00Z");
    let invoice = w.only_invoice_at("2025-02-01T00:00:00Z");
    assert_eq!(invoice.reason, InvoiceReason::Cancellation);
    assert_eq!(
        lines(invoice),
        [line(
            LineKind::Usage,
            1000,
            "0.002",
            "2.00",
            "01-01",
            "02-01"
        )]
    );
}

#[test]
fn a_scheduled_plan_change_bills_the_old_usage_on_the_new_invoice_and_resets_it() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "metered", "billingPeriod": "MONTHLY", "subscriptionId": "old"}),
    );
    w.report(
        "2025-01-05T00:00:00Z",
        json!({"featureId": "api-calls", "value": 700}),
    );
    w.report(
        "2025-01-06T00:00:00Z",
        json!({"featureId": "storage-gb", "value": 40}),
    );
    // 10 a month plus usage → 5 a month is a downgrade: scheduled for the period end.
    w.provision(
        "2025-01-10T00:00:00Z",
        json!({"planId": "basic", "billingPeriod": "MONTHLY", "subscriptionId": "new"}),
    );
    w.events.clear();
    w.at("2025-02-01T00:00:00Z");
    let invoice = w.only_invoice_at("2025-02-01T00:00:00Z");
    assert_eq!(
        (invoice.subscription.as_str(), invoice.reason),
        ("new", InvoiceReason::SubscriptionCreation)
    );
    assert_eq!(
        lines(invoice),
        [
            line(LineKind::Charge, 1, "5", "5.00", "02-01", "03-01"),
            line(LineKind::Usage, 700, "0.002", "1.40", "01-01", "02-01"),
            line(LineKind::Usage, 1, "5", "5.00", "01-01", "02-01"),
        ]
    );
    let events: Vec<(EventKind, &str, Option<&str>)> = w
        .events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.subscription.as_str(),
                e.feature.as_ref().map(|f| f.as_str()),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (EventKind::SubscriptionCanceled, "old", None),
            (EventKind::ScheduledUpdateApplied, "old", None),
            // Storage is a level, not reset; only the incremental meter is.
            (EventKind::UsageReset, "new", Some("api-calls")),
            (EventKind::SubscriptionStarted, "new", None),
            (EventKind::InvoiceIssued, "new", None),
        ]
    );
    assert!(w.events.iter().all(|e| e.at == t("2025-02-01T00:00:00Z")));
    assert!(w.state.usage.record(None, "api-calls").is_none());
    assert_eq!(
        w.state
            .usage
            .current(None, "storage-gb", t("2025-02-01T00:00:00Z")),
        40
    );
}

#[test]
fn a_replacement_that_charges_nothing_bills_the_old_usage_on_its_own_invoice() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "metered", "billingPeriod": "MONTHLY", "subscriptionId": "old"}),
    );
    w.report(
        "2025-01-05T00:00:00Z",
        json!({"featureId": "api-calls", "value": 1500}),
    );
    w.provision(
        "2025-01-10T00:00:00Z",
        json!({"planId": "free", "subscriptionId": "free"}),
    );
    w.at("2025-02-01T00:00:00Z");
    assert_eq!(
        w.state.subscription("free").unwrap().status,
        SubscriptionStatus::Active
    );
    let invoice = w.only_invoice_at("2025-02-01T00:00:00Z");
    assert_eq!(
        (invoice.subscription.as_str(), invoice.reason),
        ("old", InvoiceReason::Cancellation)
    );
    assert_eq!(
        lines(invoice),
        [line(
            LineKind::Usage,
            1500,
            "0.002",
            "3.00",
            "01-01",
            "02-01"
        )]
    );
}

#[test]
fn a_resource_s_subscription_bills_only_that_resource_s_usage() {
    let mut w = World::new();
    for site in ["a", "b"] {
        w.provision(
            "2025-01-01T00:00:00Z",
            json!({"planId": "site", "billingPeriod": "MONTHLY", "resourceId": site,
                   "subscriptionId": format!("site-{site}")}),
        );
    }
    w.report(
        "2025-01-02T00:00:00Z",
        json!({"featureId": "api-calls", "value": 100, "resourceId": "a"}),
    );
    w.report(
        "2025-01-02T00:00:00Z",
        json!({"featureId": "api-calls", "value": 300, "resourceId": "b"}),
    );
    w.at("2025-02-01T00:00:00Z");
    let billed: Vec<(String, u64)> = w
        .invoices_at("2025-02-01T00:00:00Z")
        .iter()
        .map(|i| (i.subscription.to_string(), i.lines[0].quantity))
        .collect();
    assert_eq!(
        billed,
        [("site-a".to_owned(), 100), ("site-b".to_owned(), 300)]
    );
}

#[test]
fn a_transferred_subscription_bills_the_level_it_held_on_either_resource() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "site-storage", "billingPeriod": "MONTHLY", "resourceId": "a",
               "subscriptionId": "s"}),
    );
    let set = |w: &mut World, when: &str, site: &str, gb: u64| {
        w.report(
            when,
            json!({"featureId": "storage-gb", "value": gb, "updateBehavior": "SET",
                   "resourceId": site}),
        )
    };
    set(&mut w, "2025-01-05T00:00:00Z", "a", 350);
    set(&mut w, "2025-01-08T00:00:00Z", "a", 120);
    w.transfer("2025-01-10T00:00:00Z", "s", "b");
    // The level stays with its resource: `b` starts from its own.
    assert_eq!(set(&mut w, "2025-01-15T00:00:00Z", "b", 80), 80);
    assert_eq!(
        w.state.usage.current(Some("a"), "storage-gb", w.now),
        120,
        "`a` keeps its level"
    );
    set(&mut w, "2025-01-25T00:00:00Z", "b", 230);
    // January's highest level was 350 GB, held on `a` before the transfer.
    w.at("2025-02-01T00:00:00Z");
    assert_eq!(
        lines(w.only_invoice_at("2025-02-01T00:00:00Z")),
        [line(LineKind::Usage, 4, "5", "20.00", "01-01", "02-01")]
    );
    // Nothing reported in February: 230 GB held on `b` until the move back, then 120 GB
    // on `a`.
    w.transfer("2025-02-10T00:00:00Z", "s", "a");
    w.at("2025-03-01T00:00:00Z");
    assert_eq!(
        lines(w.only_invoice_at("2025-03-01T00:00:00Z")),
        [line(LineKind::Usage, 3, "5", "15.00", "02-01", "03-01")]
    );
    // March holds 120 GB on `a` all month.
    w.at("2025-04-01T00:00:00Z");
    assert_eq!(
        lines(w.only_invoice_at("2025-04-01T00:00:00Z")),
        [line(LineKind::Usage, 2, "5", "10.00", "03-01", "04-01")]
    );
}

#[test]
fn usage_resets_names_what_reset_usage_on_change_removes_without_removing_it() {
    let mut w = World::new();
    w.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "basic", "billingPeriod": "MONTHLY", "subscriptionId": "s"}),
    );
    w.report(
        "2025-01-02T00:00:00Z",
        json!({"featureId": "api-calls", "value": 10}),
    );
    let from = w.state.subscription("s").unwrap().config.clone();
    let mut to = from.clone();
    to.plan = tollgate_core::id::PlanId::new("metered");
    let product = ProductId::new("app");
    let change = PlanChange {
        product: &product,
        resource: None,
        from: &from,
        to: &to,
    };
    let before = w.state.usage.clone();
    let named = usage_resets(&w.catalog, &w.state.usage, &change);
    assert_eq!(named, [(None::<ResourceId>, "api-calls".into())]);
    assert_eq!(w.state.usage, before, "naming the resets changes nothing");
    let reset = reset_usage_on_change(&w.catalog, &mut w.state.usage, &change);
    assert_eq!(reset, ["api-calls".into()]);
    assert!(w.state.usage.record(None, "api-calls").is_none());
    assert!(usage_resets(&w.catalog, &w.state.usage, &change).is_empty());
}
