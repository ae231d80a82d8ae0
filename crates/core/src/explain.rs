//! The explanation of a decision: the rule that fired at each stage, as typed steps.
//!
//! A step keeps the values it names (ids, instants, amounts) and is written out only when
//! it is displayed or serialized, so deciding does not pay for text nobody reads. Each
//! step displays as one line, prefixed by its stage (`validate:`, `trial:`, `start:`,
//! `payment:`, `effects:`, `checkout:`); the steps of the decisions that are not
//! provisioning (`cancelScheduledUpdates`, `transferSubscription`) have no prefix.

use crate::change::ChangeType;
use crate::id::{FeatureId, PlanId, ProductId, ResourceId, SubscriptionId};
use crate::invoice::InvoiceReason;
use crate::money::Currency;
use crate::period::Period;
use crate::subscription::SubscriptionStatus;
use crate::trial::{TrialDecision, TrialReason};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// One rule that fired while deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// The request names this plan version of this product.
    Validated {
        /// The plan.
        plan: PlanId,
        /// Its version.
        version: u32,
        /// Its product.
        product: ProductId,
    },
    /// The trial decision and why.
    Trial {
        /// The decision.
        decision: TrialDecision,
        /// Why.
        reason: TrialReason,
    },
    /// A live trial of another plan ends now, replaced by the requested plan.
    TrialEndsForPlan {
        /// The trial.
        trial: SubscriptionId,
        /// Its plan.
        trial_plan: PlanId,
        /// The plan replacing it.
        plan: PlanId,
    },
    /// The live trial ends when the requested paid subscription starts later.
    TrialEndsAtStart {
        /// The trial.
        trial: SubscriptionId,
        /// Its plan.
        trial_plan: PlanId,
        /// The plan replacing it.
        plan: PlanId,
        /// When the paid subscription starts and the trial ends.
        at: DateTime<Utc>,
    },
    /// A waiting subscription of the same kind is replaced by the request.
    WaitingReplaced {
        /// The waiting subscription.
        subscription: SubscriptionId,
    },
    /// The live subscription's scheduled change is due when (or after) the waiting
    /// subscription requested replaces it: it is canceled, as it would never run.
    ScheduledChangeSuperseded {
        /// The live subscription.
        subscription: SubscriptionId,
        /// When the change was due.
        at: DateTime<Utc>,
        /// When the waiting subscription starts.
        start: DateTime<Utc>,
    },
    /// The new subscription waits for its start date.
    Waits {
        /// The new subscription.
        subscription: SubscriptionId,
        /// When it starts.
        start: DateTime<Utc>,
    },
    /// The live trial is replaced by the new trial.
    TrialReplaced {
        /// The trial replaced.
        trial: SubscriptionId,
    },
    /// A live paid subscription keeps running beside the new trial.
    ParallelTrial {
        /// The paid subscription.
        subscription: SubscriptionId,
    },
    /// A trial starts.
    TrialStarts {
        /// The trial.
        subscription: SubscriptionId,
        /// When it ends.
        until: DateTime<Utc>,
    },
    /// The paid subscription starts when the trial of its plan ends (`AT_TRIAL_END`).
    ConvertsAtTrialEnd {
        /// The paid subscription.
        subscription: SubscriptionId,
        /// The trial.
        trial: SubscriptionId,
        /// When the trial ends.
        at: DateTime<Utc>,
    },
    /// The trial ends now and the paid subscription starts (`IMMEDIATE`).
    ConvertsNow {
        /// The trial.
        trial: SubscriptionId,
    },
    /// The start is in the past; nothing is charged for time before now.
    Backdated {
        /// The start.
        start: DateTime<Utc>,
    },
    /// A subscription is created.
    Created {
        /// The subscription.
        subscription: SubscriptionId,
        /// Its plan.
        plan: PlanId,
    },
    /// A plan change is stored on the current subscription for later.
    PlanChangeScheduled {
        /// Its direction.
        direction: ChangeType,
        /// The plan it moves to.
        plan: PlanId,
        /// The current subscription.
        subscription: SubscriptionId,
        /// When it applies.
        at: DateTime<Utc>,
    },
    /// A change stored for when a pending cancellation would have ended the subscription
    /// withdraws that cancellation: the subscription goes on.
    CancellationWithdrawn {
        /// The subscription.
        subscription: SubscriptionId,
        /// When it was to end.
        at: DateTime<Utc>,
    },
    /// The usage of some features resets (the product's usage-reset rule).
    UsageResets {
        /// How many features.
        features: usize,
    },
    /// The request equals the subscription's configuration.
    SameConfiguration {
        /// The subscription.
        subscription: SubscriptionId,
        /// What follows.
        consequence: &'static str,
    },
    /// The request restores the subscription's configuration: its scheduled change goes.
    ScheduledChangeDropped {
        /// The subscription.
        subscription: SubscriptionId,
    },
    /// A migration keeps the change the customer scheduled for the subscription.
    ScheduledChangeMigrated {
        /// The subscription.
        subscription: SubscriptionId,
        /// When the change applies.
        at: DateTime<Utc>,
        /// Whether the change goes on with the migrated plan, and so moved to the latest
        /// versions with it; otherwise it leads to another plan and stays as it was.
        moved: bool,
    },
    /// A change keeps the migration scheduled for the subscription, to the changed
    /// configuration at the latest versions.
    MigrationGoesOn {
        /// The subscription.
        subscription: SubscriptionId,
        /// When the migration applies.
        at: DateTime<Utc>,
    },
    /// A change starting a new billing period now ends the period a scheduled migration
    /// waited for: the migration applies with the change, which is priced at the latest
    /// versions.
    MigrationAppliedWithChange {
        /// The subscription.
        subscription: SubscriptionId,
    },
    /// A subscription that has not been charged takes the change now, without proration.
    ChangedUncharged {
        /// The subscription.
        subscription: SubscriptionId,
        /// Its status.
        status: SubscriptionStatus,
    },
    /// An in-place change is stored for later.
    UpdateScheduled {
        /// Its direction.
        direction: ChangeType,
        /// The subscription.
        subscription: SubscriptionId,
        /// When it applies.
        at: DateTime<Utc>,
    },
    /// A change applies now in the current billing period.
    ChangedKeepingPeriod {
        /// Its direction.
        direction: ChangeType,
        /// The subscription changed or replaced.
        subscription: SubscriptionId,
        /// The billing period kept.
        period: Period,
    },
    /// A change applies now and a new billing period starts.
    ChangedWithNewPeriod {
        /// Its direction.
        direction: ChangeType,
        /// The subscription changed or replaced.
        subscription: SubscriptionId,
    },
    /// A change keeps the period a backdated start began in, which stays uncharged.
    UnchargedPeriodKept {
        /// The subscription changed or replaced.
        subscription: SubscriptionId,
        /// The end of the period, when billing starts.
        until: DateTime<Utc>,
    },
    /// `prorationBehavior: NONE`.
    ProrationNone,
    /// `prorationBehavior: CREATE_PRORATIONS`.
    ProrationsWait,
    /// Payment: the customer has a payment method.
    PaymentMethodPresent,
    /// Payment: none is needed.
    NoPaymentMethodNeeded,
    /// Payment: none is present; a checkout is requested.
    CheckoutRequested,
    /// An invoice is issued.
    Invoice {
        /// Its id.
        id: String,
        /// Why.
        reason: InvoiceReason,
        /// Its total.
        total: Decimal,
        /// Its currency.
        currency: Currency,
    },
    /// A checkout completed.
    CheckoutCompleted {
        /// The subscription it was for.
        subscription: SubscriptionId,
    },
    /// `cancelScheduledUpdates` on a subscription without any.
    NoScheduledUpdate {
        /// The subscription.
        subscription: SubscriptionId,
    },
    /// `cancelScheduledUpdates` drops the subscription's scheduled updates.
    ScheduledUpdatesCanceled {
        /// The subscription.
        subscription: SubscriptionId,
    },
    /// A transfer to the resource the subscription is on.
    AlreadyOnResource {
        /// The subscription.
        subscription: SubscriptionId,
        /// The resource.
        resource: ResourceId,
    },
    /// A transfer.
    MovesToResource {
        /// The subscription.
        subscription: SubscriptionId,
        /// The destination.
        resource: ResourceId,
    },
    /// A transfer takes the usage of a usage-based price not billed yet along.
    UnbilledUsageMoves {
        /// The subscription moved.
        subscription: SubscriptionId,
        /// The metered feature.
        feature: FeatureId,
    },
    /// A transfer parts a trial from the waiting subscription it was to convert into
    /// (either moves): the trial ends by its own end behaviour.
    TrialConversionDropped {
        /// The trial.
        trial: SubscriptionId,
        /// The waiting subscription.
        subscription: SubscriptionId,
    },
}

/// The word of a change direction.
pub(crate) fn change_word(direction: ChangeType) -> &'static str {
    match direction {
        ChangeType::New => "NEW",
        ChangeType::Upgrade => "UPGRADE",
        ChangeType::Downgrade => "DOWNGRADE",
        ChangeType::None => "NONE",
    }
}

fn trial_word(decision: TrialDecision) -> &'static str {
    match decision {
        TrialDecision::Started => "STARTED",
        TrialDecision::NotEligible => "NOT_ELIGIBLE",
        TrialDecision::Skipped => "SKIPPED",
        TrialDecision::NotOffered => "NOT_OFFERED",
        TrialDecision::Overridden => "OVERRIDDEN",
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Validated {
                plan,
                version,
                product,
            } => write!(
                f,
                "validate: plan `{plan}` version {version} of product `{product}`"
            ),
            Self::Trial { decision, reason } => {
                write!(f, "trial: {} ({reason})", trial_word(*decision))
            }
            Self::TrialEndsForPlan {
                trial,
                trial_plan,
                plan,
            } => write!(
                f,
                "start: trial `{trial}` of plan `{trial_plan}` ends now, replaced by plan `{plan}`"
            ),
            Self::TrialEndsAtStart {
                trial,
                trial_plan,
                plan,
                at,
            } => write!(
                f,
                "start: trial `{trial}` of plan `{trial_plan}` ends at {at}, when plan `{plan}` starts"
            ),
            Self::WaitingReplaced { subscription } => write!(
                f,
                "start: waiting subscription `{subscription}` is replaced by this request"
            ),
            Self::Waits {
                subscription,
                start,
            } => write!(
                f,
                "start: `{subscription}` waits until {start} (NOT_STARTED), then replaces the live subscription of its kind"
            ),
            Self::TrialReplaced { trial } => {
                write!(f, "start: trial `{trial}` is replaced by the new trial")
            }
            Self::ParallelTrial { subscription } => write!(
                f,
                "start: `{subscription}` keeps running beside the trial (parallel trial)"
            ),
            Self::TrialStarts {
                subscription,
                until,
            } => write!(f, "start: trial `{subscription}` until {until}"),
            Self::ConvertsAtTrialEnd {
                subscription,
                trial,
                at,
            } => write!(
                f,
                "start: trial conversion AT_TRIAL_END: `{subscription}` starts when trial `{trial}` ends at {at}"
            ),
            Self::ConvertsNow { trial } => write!(
                f,
                "start: trial conversion IMMEDIATE: trial `{trial}` ends now and the paid subscription starts"
            ),
            Self::Backdated { start } => write!(
                f,
                "start: backdated to {start}; nothing is charged for time before now"
            ),
            Self::Created { subscription, plan } => {
                write!(f, "start: `{subscription}` created on plan `{plan}`")
            }
            Self::PlanChangeScheduled {
                direction,
                plan,
                subscription,
                at,
            } => write!(
                f,
                "start: {} to plan `{plan}` scheduled on `{subscription}` for {at}",
                change_word(*direction)
            ),
            Self::CancellationWithdrawn { subscription, at } => write!(
                f,
                "start: the cancellation of `{subscription}` pending for {at} is withdrawn: the scheduled change keeps it going"
            ),
            Self::UsageResets { features } => write!(
                f,
                "effects: the usage of {features} feature(s) resets (the product's usage-reset rule)"
            ),
            Self::SameConfiguration {
                subscription,
                consequence,
            } => write!(
                f,
                "start: `{subscription}` already has this configuration; {consequence}"
            ),
            Self::ScheduledChangeSuperseded {
                subscription,
                at,
                start,
            } => write!(
                f,
                "start: `{subscription}`'s change scheduled for `{at}` is canceled: the subscription starting at `{start}` replaces it first"
            ),
            Self::ScheduledChangeDropped { subscription } => write!(
                f,
                "start: the request restores `{subscription}`'s configuration: its scheduled change is canceled"
            ),
            Self::ScheduledChangeMigrated {
                subscription,
                at,
                moved: true,
            } => write!(
                f,
                "start: `{subscription}`'s change scheduled for {at} stays, moved to the latest versions with the subscription"
            ),
            Self::ScheduledChangeMigrated {
                subscription,
                at,
                moved: false,
            } => write!(
                f,
                "start: `{subscription}`'s change scheduled for {at} to another plan stays as it is"
            ),
            Self::MigrationGoesOn { subscription, at } => write!(
                f,
                "start: the migration of `{subscription}` goes on with the change: at {at}, the changed configuration moves to the latest versions"
            ),
            Self::MigrationAppliedWithChange { subscription } => write!(
                f,
                "start: the change starts a new billing period, ending the one `{subscription}`'s migration waited for: the migration applies with it, at the latest versions"
            ),
            Self::ChangedUncharged {
                subscription,
                status,
            } => write!(
                f,
                "start: `{subscription}` is {}; the change applies now, without proration",
                status.as_str()
            ),
            Self::UpdateScheduled {
                direction,
                subscription,
                at,
            } => write!(
                f,
                "start: {} of `{subscription}` scheduled for {at}; the current configuration stays until then",
                change_word(*direction)
            ),
            Self::ChangedKeepingPeriod {
                direction,
                subscription,
                period,
            } => write!(
                f,
                "start: {} from `{subscription}` applied now, keeping the billing period {}..{}",
                change_word(*direction),
                period.start,
                period.end
            ),
            Self::ChangedWithNewPeriod {
                direction,
                subscription,
            } => write!(
                f,
                "start: {} from `{subscription}` applied now, with a new billing period from now",
                change_word(*direction)
            ),
            Self::UnchargedPeriodKept {
                subscription,
                until,
            } => write!(
                f,
                "effects: nothing was charged for the current period of `{subscription}` (a backdated start): nothing is prorated, and billing starts at {until}"
            ),
            Self::ProrationNone => {
                f.write_str("effects: proration NONE: the new price applies from the next period")
            }
            Self::ProrationsWait => {
                f.write_str("effects: CREATE_PRORATIONS: the prorations wait for the next invoice")
            }
            Self::PaymentMethodPresent => {
                f.write_str("payment: SUCCESS: the customer has a payment method")
            }
            Self::NoPaymentMethodNeeded => {
                f.write_str("payment: SUCCESS: no payment method is needed")
            }
            Self::CheckoutRequested => {
                f.write_str("payment: PAYMENT_REQUIRED: no payment method; a checkout is requested")
            }
            Self::Invoice {
                id,
                reason,
                total,
                currency,
            } => write!(
                f,
                "effects: invoice `{id}` ({}) of {total} {currency}",
                reason.as_str()
            ),
            Self::CheckoutCompleted { subscription } => write!(
                f,
                "checkout: completed for `{subscription}`; the customer has a payment method"
            ),
            Self::NoScheduledUpdate { subscription } => write!(
                f,
                "`{subscription}` has no scheduled update; nothing changes"
            ),
            Self::ScheduledUpdatesCanceled { subscription } => {
                write!(f, "the scheduled updates of `{subscription}` are canceled")
            }
            Self::AlreadyOnResource {
                subscription,
                resource,
            } => write!(f, "`{subscription}` is already on resource `{resource}`"),
            Self::MovesToResource {
                subscription,
                resource,
            } => write!(f, "`{subscription}` moves to resource `{resource}`"),
            Self::UnbilledUsageMoves {
                subscription,
                feature,
            } => write!(
                f,
                "the usage of `{feature}` not billed yet moves with `{subscription}`: its period close bills it"
            ),
            Self::TrialConversionDropped {
                trial,
                subscription,
            } => write!(
                f,
                "trial `{trial}` no longer converts into `{subscription}`: it ends by its own end behaviour"
            ),
        }
    }
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The stored shape of a step (a recorded decision keeps its explanation): each step by its
/// kind and the values it names, so that it reads back as the step it was. Its text (the
/// `Serialize` of [`Step`]) is for reading, and does not read back.
#[derive(Serialize, Deserialize)]
#[serde(
    remote = "Step",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
enum StoredStep {
    Validated {
        plan: PlanId,
        version: u32,
        product: ProductId,
    },
    Trial {
        decision: TrialDecision,
        #[serde(with = "crate::trial::stored_reason")]
        reason: TrialReason,
    },
    TrialEndsForPlan {
        trial: SubscriptionId,
        trial_plan: PlanId,
        plan: PlanId,
    },
    TrialEndsAtStart {
        trial: SubscriptionId,
        trial_plan: PlanId,
        plan: PlanId,
        at: DateTime<Utc>,
    },
    WaitingReplaced {
        subscription: SubscriptionId,
    },
    ScheduledChangeSuperseded {
        subscription: SubscriptionId,
        at: DateTime<Utc>,
        start: DateTime<Utc>,
    },
    Waits {
        subscription: SubscriptionId,
        start: DateTime<Utc>,
    },
    TrialReplaced {
        trial: SubscriptionId,
    },
    ParallelTrial {
        subscription: SubscriptionId,
    },
    TrialStarts {
        subscription: SubscriptionId,
        until: DateTime<Utc>,
    },
    ConvertsAtTrialEnd {
        subscription: SubscriptionId,
        trial: SubscriptionId,
        at: DateTime<Utc>,
    },
    ConvertsNow {
        trial: SubscriptionId,
    },
    Backdated {
        start: DateTime<Utc>,
    },
    Created {
        subscription: SubscriptionId,
        plan: PlanId,
    },
    PlanChangeScheduled {
        direction: ChangeType,
        plan: PlanId,
        subscription: SubscriptionId,
        at: DateTime<Utc>,
    },
    CancellationWithdrawn {
        subscription: SubscriptionId,
        at: DateTime<Utc>,
    },
    UsageResets {
        features: usize,
    },
    SameConfiguration {
        subscription: SubscriptionId,
        #[serde(with = "consequence")]
        consequence: Consequence,
    },
    ScheduledChangeDropped {
        subscription: SubscriptionId,
    },
    ScheduledChangeMigrated {
        subscription: SubscriptionId,
        at: DateTime<Utc>,
        moved: bool,
    },
    MigrationGoesOn {
        subscription: SubscriptionId,
        at: DateTime<Utc>,
    },
    MigrationAppliedWithChange {
        subscription: SubscriptionId,
    },
    ChangedUncharged {
        subscription: SubscriptionId,
        status: SubscriptionStatus,
    },
    UpdateScheduled {
        direction: ChangeType,
        subscription: SubscriptionId,
        at: DateTime<Utc>,
    },
    ChangedKeepingPeriod {
        direction: ChangeType,
        subscription: SubscriptionId,
        period: Period,
    },
    ChangedWithNewPeriod {
        direction: ChangeType,
        subscription: SubscriptionId,
    },
    UnchargedPeriodKept {
        subscription: SubscriptionId,
        until: DateTime<Utc>,
    },
    ProrationNone,
    ProrationsWait,
    PaymentMethodPresent,
    NoPaymentMethodNeeded,
    CheckoutRequested,
    Invoice {
        id: String,
        reason: InvoiceReason,
        total: Decimal,
        currency: Currency,
    },
    CheckoutCompleted {
        subscription: SubscriptionId,
    },
    NoScheduledUpdate {
        subscription: SubscriptionId,
    },
    ScheduledUpdatesCanceled {
        subscription: SubscriptionId,
    },
    AlreadyOnResource {
        subscription: SubscriptionId,
        resource: ResourceId,
    },
    MovesToResource {
        subscription: SubscriptionId,
        resource: ResourceId,
    },
    UnbilledUsageMoves {
        subscription: SubscriptionId,
        feature: FeatureId,
    },
    TrialConversionDropped {
        trial: SubscriptionId,
        subscription: SubscriptionId,
    },
}

/// A [`Step::SameConfiguration`]'s consequence: named through an alias, since serde would
/// borrow a field written `&str` from the input, and a stored step outlives its input.
type Consequence = &'static str;

/// The consequences a [`Step::SameConfiguration`] names, as they read back.
const CONSEQUENCES: [&str; 2] = ["nothing changes", "nothing is prorated"];

/// A [`Step::SameConfiguration`]'s consequence, stored as its text and read back as one of
/// [`CONSEQUENCES`].
mod consequence {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(
        text: &&'static str,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<&'static str, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::CONSEQUENCES
            .into_iter()
            .find(|known| *known == text)
            .ok_or_else(|| de::Error::custom(format!("unknown consequence `{text}`")))
    }
}

/// A decision's explanation in its stored shape ([`StoredStep`]).
pub(crate) mod stored_steps {
    use super::{Step, StoredStep};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct One(#[serde(with = "StoredStep")] Step);

    #[derive(Serialize)]
    #[serde(transparent)]
    struct Ref<'a>(#[serde(with = "StoredStep")] &'a Step);

    pub(crate) fn serialize<S: Serializer>(
        steps: &[Step],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(steps.iter().map(Ref))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Step>, D::Error> {
        Ok(Vec::<One>::deserialize(deserializer)?
            .into_iter()
            .map(|one| one.0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::{Value, json};

    fn serde_name<T: Serialize>(value: T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn the_words_of_a_step_are_the_serialized_names() {
        for direction in [
            ChangeType::New,
            ChangeType::Upgrade,
            ChangeType::Downgrade,
            ChangeType::None,
        ] {
            assert_eq!(json!(change_word(direction)), serde_name(direction));
        }
        for decision in [
            TrialDecision::Started,
            TrialDecision::NotEligible,
            TrialDecision::Skipped,
            TrialDecision::NotOffered,
            TrialDecision::Overridden,
        ] {
            assert_eq!(json!(trial_word(decision)), serde_name(decision));
        }
        for status in [
            SubscriptionStatus::NotStarted,
            SubscriptionStatus::PaymentPending,
            SubscriptionStatus::InTrial,
            SubscriptionStatus::Active,
            SubscriptionStatus::Canceled,
            SubscriptionStatus::Expired,
        ] {
            assert_eq!(json!(status.as_str()), serde_name(status));
        }
        for reason in [
            InvoiceReason::SubscriptionCreation,
            InvoiceReason::SubscriptionUpdate,
            InvoiceReason::BillingCycle,
            InvoiceReason::Cancellation,
        ] {
            assert_eq!(json!(reason.as_str()), serde_name(reason));
        }
    }

    #[test]
    fn a_step_serializes_as_its_text() {
        let step = Step::Created {
            subscription: SubscriptionId::new("s1"),
            plan: PlanId::new("pro"),
        };
        assert_eq!(
            serde_name(&step),
            json!("start: `s1` created on plan `pro`")
        );
    }
}
