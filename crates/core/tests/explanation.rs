//! The explanations people read: one customer's timeline through the provisioning rules,
//! each decision's explanation snapshotted as text.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use chrono::{DateTime, Utc};
use common::Decide;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Write as _;
use tollgate_core::Catalog;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::CustomerId;
use tollgate_core::provision::{ProvisionDecision, ProvisionRequest, complete_checkout, provision};
use tollgate_core::settings::Settings;
use tollgate_core::update::{
    CancelScheduledRequest, TransferRequest, UpdateRequest, cancel_scheduled_updates,
    transfer_subscription, update_subscription,
};

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

struct Timeline {
    catalog: Catalog,
    state: CustomerState,
    settings: Settings,
    text: String,
}

impl Timeline {
    fn new(has_payment_method: bool) -> Self {
        let catalog = Catalog::from_json(include_bytes!("data/reference-catalog.json")).unwrap();
        let mut customer = Customer::new(CustomerId::new("c1"));
        customer.has_payment_method = has_payment_method;
        Self {
            catalog,
            state: CustomerState::new(customer),
            settings: Settings::default(),
            text: String::new(),
        }
    }

    fn record(&mut self, label: &str, at: &str, decision: &ProvisionDecision) {
        writeln!(self.text, "## {label}").unwrap();
        for step in &decision.explanation {
            writeln!(self.text, "{step}").unwrap();
        }
        decision.apply(&mut self.state, t(at));
    }

    /// Decides `input` as a request `R` with `decide`, and records the decision.
    fn decide<R: DeserializeOwned>(
        &mut self,
        label: &str,
        at: &str,
        input: Value,
        decide: Decide<R>,
    ) {
        let request: R = serde_json::from_value(input).unwrap();
        let decision = decide(
            &self.catalog,
            &self.state,
            &request,
            &Redemptions::new(),
            t(at),
            &self.settings,
        )
        .unwrap();
        self.record(label, at, &decision);
    }

    fn provision(&mut self, label: &str, at: &str, mut input: Value) {
        input["customerId"] = json!("c1");
        self.decide::<ProvisionRequest>(label, at, input, provision);
    }

    fn update(&mut self, label: &str, at: &str, input: Value) {
        self.decide::<UpdateRequest>(label, at, input, update_subscription);
    }
}

/// A `pro` request with `seats` seats and priority support, and the `extra` fields.
fn pro(id: &str, seats: u32, extra: &[(&str, Value)]) -> Value {
    let mut request = json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": id,
        "billableFeatures": [{"featureId": "seats", "quantity": seats}],
        "addons": [{"addonId": "priority-support"}]});
    for (key, value) in extra {
        request[*key] = value.clone();
    }
    request
}

#[test]
fn explanations_name_the_rule_that_fired_at_each_stage() {
    let mut tl = Timeline::new(true);
    tl.provision(
        "a trial starts",
        "2025-01-01T00:00:00Z",
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "trial"}),
    );
    tl.provision(
        "a paid request during the trial waits for its end",
        "2025-01-05T00:00:00Z",
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "paid"}),
    );
    tl.provision(
        "a parallel trial of a higher plan",
        "2025-01-06T00:00:00Z",
        json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "pro-trial",
               "trialOverride": {"isTrial": true, "trialEndDate": "2025-01-09T00:00:00Z"}}),
    );
    tl.provision(
        "a new request replaces the waiting one",
        "2025-01-07T00:00:00Z",
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "paid-2"}),
    );
    tl.provision(
        "a future start",
        "2025-01-08T00:00:00Z",
        json!({"planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "w1",
               "subscriptionId": "w1", "startDate": "2025-03-01T00:00:00Z"}),
    );
    tl.provision(
        "a backdated start",
        "2025-01-08T00:00:00Z",
        json!({"planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "w2",
               "subscriptionId": "w2", "startDate": "2025-01-02T00:00:00Z"}),
    );
    tl.provision(
        "an upgrade now keeps the billing period",
        "2025-01-20T08:30:00Z",
        pro("pro", 3, &[]),
    );
    tl.provision(
        "a downgrade is scheduled",
        "2025-01-21T00:00:00Z",
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "back"}),
    );
    tl.provision(
        "restoring the configuration cancels the scheduled change",
        "2025-01-22T00:00:00Z",
        pro("same", 3, &[]),
    );
    tl.provision(
        "the same configuration again changes nothing",
        "2025-01-22T00:00:00Z",
        pro("same", 3, &[]),
    );
    tl.provision(
        "an upgrade with a new billing period and prorations kept for later",
        "2025-01-23T00:00:00Z",
        pro(
            "pro-5",
            5,
            &[("prorationBehavior", json!("CREATE_PRORATIONS"))],
        ),
    );
    tl.provision(
        "an upgrade without proration",
        "2025-01-24T00:00:00Z",
        pro("pro-6", 6, &[("prorationBehavior", json!("NONE"))]),
    );
    tl.provision(
        "an upgrade with a new billing period from now",
        "2025-01-25T00:00:00Z",
        pro("pro-7", 7, &[("billingCycleAnchor", json!("NOW"))]),
    );
    tl.update(
        "an update scheduled for the period's end",
        "2025-01-26T00:00:00Z",
        json!({"subscriptionId": "pro-7", "billableFeatures": [{"featureId": "seats", "quantity": 4}]}),
    );
    let cancel = cancel_scheduled_updates(
        &tl.state,
        &CancelScheduledRequest {
            subscription_id: "pro-7".into(),
        },
    )
    .unwrap();
    tl.record(
        "scheduled updates canceled",
        "2025-01-26T00:00:00Z",
        &cancel,
    );
    let nothing = cancel_scheduled_updates(
        &tl.state,
        &CancelScheduledRequest {
            subscription_id: "pro-7".into(),
        },
    )
    .unwrap();
    tl.record("no scheduled update", "2025-01-26T00:00:00Z", &nothing);
    tl.update(
        "an update of a waiting subscription",
        "2025-01-27T00:00:00Z",
        json!({"subscriptionId": "w1", "billableFeatures": [{"featureId": "storage-gb", "quantity": 20}]}),
    );
    let transfer = |tl: &Timeline, to: &str| {
        let request: TransferRequest =
            serde_json::from_value(json!({"subscriptionId": "w1", "destinationResourceId": to}))
                .unwrap();
        transfer_subscription(&tl.catalog, &tl.state, &request, t("2025-01-27T00:00:00Z")).unwrap()
    };
    let moved = transfer(&tl, "w3");
    tl.record("a transfer", "2025-01-27T00:00:00Z", &moved);
    let stays = transfer(&tl, "w3");
    tl.record("a transfer to where it is", "2025-01-27T00:00:00Z", &stays);

    let mut new = Timeline::new(false);
    new.provision(
        "a free plan",
        "2025-01-01T00:00:00Z",
        json!({"planId": "free", "subscriptionId": "free"}),
    );
    new.provision(
        "payment required",
        "2025-01-01T00:00:00Z",
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s",
               "checkoutOptions": {"successUrl": "https://ok", "cancelUrl": "https://cancel"}}),
    );
    let done = complete_checkout(
        &new.catalog,
        &new.state,
        "s",
        &Redemptions::new(),
        t("2025-01-03T10:00:00Z"),
        &new.settings,
    )
    .unwrap();
    new.record(
        "the checkout completes: a change from free",
        "2025-01-03T10:00:00Z",
        &done.decision,
    );
    insta::assert_snapshot!(format!("{}\n{}", tl.text, new.text));
}
