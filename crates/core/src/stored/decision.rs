//! The stored shape of a provisioning decision, which a host keeps when it records an
//! operation's answer under an idempotency key: the decision's fields in camelCase, its
//! explanation as typed steps. Strict like the customer's state: unknown keys are refused.
//!
//! The shape is declared here, beside the state's other stored shapes, rather than on the
//! types themselves: the decision types change with the deciding code, and a stored shape
//! only grows (a new field comes with a default).

use crate::change::ChangeType;
use crate::customer::PendingCheckout;
use crate::explain::Step;
use crate::id::{FeatureId, ProductId, ResourceId, SubscriptionId};
use crate::invoice::{Invoice, InvoiceLine, InvoiceReason};
use crate::money::Currency;
use crate::period::Period;
use crate::provision::{
    Charge, CheckoutRequest, Effects, Ending, ProvisionDecision, ProvisionStatus, ScheduleChange,
};
use crate::subscription::{CancelReason, ScheduledUpdate, Subscription};
use crate::trial::TrialOutcome;
use crate::usage::UnbilledMove;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `Serialize` and `Deserialize` for `$ty` through its stored shape `$def`.
macro_rules! stored_as {
    ($ty:ty, $def:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $def::serialize(self, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $def::deserialize(deserializer)
            }
        }
    };
}

#[derive(Serialize, Deserialize)]
#[serde(
    remote = "CheckoutRequest",
    deny_unknown_fields,
    rename_all = "camelCase"
)]
struct StoredCheckout {
    subscription_id: SubscriptionId,
    success_url: String,
    cancel_url: String,
}
stored_as!(CheckoutRequest, StoredCheckout);

#[derive(Serialize, Deserialize)]
#[serde(remote = "Ending", deny_unknown_fields, rename_all = "camelCase")]
struct StoredEnding {
    subscription: SubscriptionId,
    at: DateTime<Utc>,
    reason: CancelReason,
}
stored_as!(Ending, StoredEnding);

#[derive(Serialize, Deserialize)]
#[serde(
    remote = "ScheduleChange",
    deny_unknown_fields,
    rename_all = "camelCase"
)]
struct StoredScheduleChange {
    subscription: SubscriptionId,
    update: Option<ScheduledUpdate>,
}
stored_as!(ScheduleChange, StoredScheduleChange);

#[derive(Serialize, Deserialize)]
#[serde(remote = "Charge", deny_unknown_fields, rename_all = "camelCase")]
struct StoredCharge {
    subscription: SubscriptionId,
    reason: InvoiceReason,
    currency: Currency,
    lines: Vec<InvoiceLine>,
    period: Period,
    proration_date: Option<DateTime<Utc>>,
    paid_entries: Vec<usize>,
    prorations_wait: bool,
    pending_stays: bool,
    earlier_prorations: usize,
    settles_waiting: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ledger_to: Option<SubscriptionId>,
}
stored_as!(Charge, StoredCharge);

#[derive(Serialize, Deserialize)]
#[serde(remote = "Effects", deny_unknown_fields, rename_all = "camelCase")]
struct StoredEffects {
    replace: Vec<Subscription>,
    create: Vec<Subscription>,
    end: Vec<Ending>,
    schedule: Vec<ScheduleChange>,
    invoice: Option<Invoice>,
    pending_checkout: Option<Box<PendingCheckout>>,
    trial_product: Option<ProductId>,
    paid_product: Option<ProductId>,
    resource: Option<ResourceId>,
    redeemed_code: Option<String>,
    usage_reset: Vec<(Option<ResourceId>, FeatureId)>,
    usage_billed: Vec<(Option<ResourceId>, FeatureId, Period)>,
    usage_moved: Vec<UnbilledMove>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    usage_segments: Vec<crate::usage::UsageSegment>,
}
stored_as!(Effects, StoredEffects);

#[derive(Serialize, Deserialize)]
#[serde(
    remote = "ProvisionDecision",
    deny_unknown_fields,
    rename_all = "camelCase"
)]
struct StoredDecision {
    status: ProvisionStatus,
    subscription: Option<SubscriptionId>,
    is_scheduled: bool,
    change_type: ChangeType,
    trial: TrialOutcome,
    checkout: Option<CheckoutRequest>,
    charge: Option<Charge>,
    effects: Effects,
    #[serde(with = "crate::explain::stored_steps")]
    explanation: Vec<Step>,
}
stored_as!(ProvisionDecision, StoredDecision);
