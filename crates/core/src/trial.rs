//! Trial rules: whether a new subscription starts as a trial, until when, and why.
//!
//! First match wins (FORMAT.md §6): an override with `isTrial: true` gives a trial whatever
//! the eligibility (`OVERRIDDEN`); a plan without a default trial offers none
//! (`NOT_OFFERED`); `isTrial: false` or `skipTrial` skips it (`SKIPPED`); an eligible
//! customer gets the plan's default trial (`STARTED`); anyone else pays (`NOT_ELIGIBLE`).
//!
//! Eligibility is self-serve: at most one trial per customer per product, ever, and none
//! after a non-trial subscription to a `PAID` plan of the product. Both count once they
//! have started: one that ended while it waited for its start or for payment was never had.

use crate::catalog::{Catalog, Plan, PricingType, TrialEndBehavior};
use crate::customer::CustomerState;
use crate::error::{Error, ErrorCode};
use crate::id::{PlanId, ProductId, ResourceId};
use crate::subscription::SubscriptionStatus;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// What was decided about a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrialDecision {
    /// The plan's default trial started.
    Started,
    /// The customer has had a trial of the product, or paid for it.
    NotEligible,
    /// The request skipped the trial.
    Skipped,
    /// The plan has no trial.
    NotOffered,
    /// The request's override gave a trial.
    Overridden,
}

/// A trial request override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrialOverride {
    /// Whether the subscription is a trial, bypassing eligibility.
    pub is_trial: bool,
    /// When the trial ends (default: the plan's trial duration from the start).
    pub trial_end_date: Option<DateTime<Utc>>,
    /// What happens at its end (default: the plan's, else convert to paid).
    pub end_behavior: Option<TrialEndBehavior>,
}

/// The terms of a trial that starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrialTerms {
    /// When it ends.
    pub end: DateTime<Utc>,
    /// What happens then.
    pub end_behavior: TrialEndBehavior,
    /// Whether starting it needs a payment method.
    pub requires_payment_method: bool,
}

/// The trial decision, why it was taken, and the trial's terms if one starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrialOutcome {
    /// The decision.
    pub decision: TrialDecision,
    /// Why (stored by its kind and id: its serialized form elsewhere is the sentence).
    #[serde(with = "stored_reason")]
    pub reason: TrialReason,
    /// The trial, if one starts.
    pub terms: Option<TrialTerms>,
}

impl TrialOutcome {
    /// The outcome of a change to an existing subscription: no trial is decided, the
    /// subscription keeps the one it has.
    #[must_use]
    pub fn unchanged() -> Self {
        outcome(TrialDecision::NotOffered, TrialReason::Unchanged)
    }

    /// The same decision for a subscription that starts `waited` later than the one it was
    /// decided for (a checkout completed after the request): a trial keeps its length, its
    /// end moving by the wait, as a waiting trial that gets its payment method late does.
    ///
    /// # Errors
    /// `InvalidArgumentError` when the moved end is out of range.
    pub fn moved_by(&self, waited: TimeDelta) -> Result<Self, Error> {
        let terms = self
            .terms
            .map(|terms| {
                crate::period::within_range(terms.end.checked_add_signed(waited))
                    .map(|end| TrialTerms { end, ..terms })
            })
            .transpose()?;
        Ok(Self {
            terms,
            ..self.clone()
        })
    }

    /// The decision a checkout requested with this one carries at its completion, for a
    /// subscription to `product` for `resource` that starts `waited` later
    /// ([`Self::moved_by`]). A trial the customer was eligible for (`STARTED`) is its one
    /// trial of the product, ever (SPEC.md §3.T): when it has had one since the request
    /// (another checkout completed first), the checkout gives none and is decided as the
    /// paid flow, `NOT_ELIGIBLE`. Everything else is carried as decided: an override
    /// bypasses eligibility, and paying for the product since does not take the trial
    /// away.
    ///
    /// # Errors
    /// `InvalidArgumentError` when the moved end is out of range.
    pub fn at_completion(
        &self,
        state: &CustomerState,
        product: &ProductId,
        resource: Option<&ResourceId>,
        waited: TimeDelta,
    ) -> Result<Self, Error> {
        if self.decision == TrialDecision::Started && had_trial(state, product, resource) {
            return Ok(outcome(
                TrialDecision::NotEligible,
                TrialReason::HadTrial(product.clone()),
            ));
        }
        self.moved_by(waited)
    }
}

/// Why a trial was or was not decided; displays as the words a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrialReason {
    /// The request's override decides.
    Overridden,
    /// The plan has no trial.
    NoTrial(PlanId),
    /// The request skips the trial.
    Skipped,
    /// The customer has had a trial of the product.
    HadTrial(ProductId),
    /// The customer has paid for the product.
    Paid(ProductId),
    /// The customer has never had a trial of the product.
    FirstTrial(ProductId),
    /// A change to an existing subscription keeps its trial.
    Unchanged,
}

impl fmt::Display for TrialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overridden => f.write_str("the request overrides the trial"),
            Self::NoTrial(plan) => write!(f, "plan `{plan}` has no trial"),
            Self::Skipped => f.write_str("the request skips the trial"),
            Self::HadTrial(product) => {
                write!(f, "the customer has had a trial of product `{product}`")
            }
            Self::Paid(product) => write!(f, "the customer has paid for product `{product}`"),
            Self::FirstTrial(product) => write!(
                f,
                "the customer has never had a trial of product `{product}`"
            ),
            Self::Unchanged => f.write_str("the change keeps the subscription's trial"),
        }
    }
}

impl Serialize for TrialReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A [`TrialReason`] as stored: its kind and the id it names.
pub(crate) mod stored_reason {
    use super::TrialReason;
    use crate::id::{PlanId, ProductId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "TrialReason", rename_all = "SCREAMING_SNAKE_CASE")]
    enum Stored {
        Overridden,
        NoTrial(PlanId),
        Skipped,
        HadTrial(ProductId),
        Paid(ProductId),
        FirstTrial(ProductId),
        Unchanged,
    }

    pub(crate) fn serialize<S: Serializer>(
        reason: &TrialReason,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Stored::serialize(reason, serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<TrialReason, D::Error> {
        Stored::deserialize(deserializer)
    }
}

/// Decides the trial of a new subscription to `plan` for `resource` starting at `start`.
///
/// # Errors
/// `TrialNotApplicable` for a trial override on a free plan; `InvalidArgumentError` for an
/// override without an end date on a plan without a default trial, or ending at or before
/// the start.
pub fn decide(
    catalog: &Catalog,
    state: &CustomerState,
    plan: &Plan,
    resource: Option<&ResourceId>,
    skip_trial: bool,
    trial_override: Option<&TrialOverride>,
    start: DateTime<Utc>,
) -> Result<TrialOutcome, Error> {
    let default = plan.default_trial;
    if let Some(o) = trial_override.filter(|o| o.is_trial) {
        if plan.pricing_type == PricingType::Free {
            return Err(Error::new(
                ErrorCode::TrialNotApplicable,
                format!("plan `{}` is free and cannot be a trial", plan.id),
            ));
        }
        let end = match (o.trial_end_date, default) {
            (Some(end), _) => end,
            (None, Some(policy)) => policy.duration.end_from(start)?,
            (None, None) => {
                return Err(Error::new(
                    ErrorCode::InvalidArgumentError,
                    format!(
                        "plan `{}` has no default trial: the override needs `trialEndDate`",
                        plan.id
                    ),
                ));
            }
        };
        if end <= start {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!("trial end `{end}` is not after the start `{start}`"),
            ));
        }
        return Ok(TrialOutcome {
            decision: TrialDecision::Overridden,
            reason: TrialReason::Overridden,
            terms: Some(TrialTerms {
                end,
                end_behavior: o
                    .end_behavior
                    .or(default.map(|d| d.end_behavior))
                    .unwrap_or_default(),
                requires_payment_method: default.is_some_and(|d| d.requires_payment_method),
            }),
        });
    }
    let Some(policy) = default else {
        return Ok(outcome(
            TrialDecision::NotOffered,
            TrialReason::NoTrial(plan.id.clone()),
        ));
    };
    if skip_trial || trial_override.is_some() {
        return Ok(outcome(TrialDecision::Skipped, TrialReason::Skipped));
    }
    if let Some(why) = ineligibility(catalog, state, plan, resource) {
        return Ok(outcome(TrialDecision::NotEligible, why));
    }
    Ok(TrialOutcome {
        decision: TrialDecision::Started,
        reason: TrialReason::FirstTrial(plan.product.clone()),
        terms: Some(TrialTerms {
            end: policy.duration.end_from(start)?,
            end_behavior: policy.end_behavior,
            requires_payment_method: policy.requires_payment_method,
        }),
    })
}

fn outcome(decision: TrialDecision, reason: TrialReason) -> TrialOutcome {
    TrialOutcome {
        decision,
        reason,
        terms: None,
    }
}

/// Why the customer may not have a self-serve trial of `plan`'s product for `resource`, if
/// it may not.
fn ineligibility(
    catalog: &Catalog,
    state: &CustomerState,
    plan: &Plan,
    resource: Option<&ResourceId>,
) -> Option<TrialReason> {
    let product = &plan.product;
    if had_trial(state, product, resource) {
        return Some(TrialReason::HadTrial(product.clone()));
    }
    // "Had" means it ran: the history records each paid subscription when it starts, and a
    // running one counts even in a state whose history was not kept. One that never started
    // (waiting for its start or for payment, then canceled or replaced) does not count.
    let paid = state.paid_history.contains(product)
        || state.subscriptions.iter().any(|s| {
            &s.product == product
                && !s.is_trial
                && s.status == SubscriptionStatus::Active
                && s.plan(catalog)
                    .is_ok_and(|p| p.pricing_type == PricingType::Paid)
        });
    paid.then(|| TrialReason::Paid(product.clone()))
}

/// Whether the customer has had its one trial of `product` (SPEC.md §3.T), as a trial for
/// `resource` would see it. "Had" means it ran: the history records each trial when it
/// starts running, and a running one counts even in a state whose history was not kept.
/// One still to start counts too, the one trial it would be, except one waiting for its
/// start in the request's own scope, which a new trial there replaces. One that ended
/// before it ran (canceled or replaced while it waited, its payment never given) was never
/// had.
fn had_trial(state: &CustomerState, product: &ProductId, resource: Option<&ResourceId>) -> bool {
    state.trial_history.contains(product)
        || state.subscriptions.iter().any(|s| {
            &s.product == product
                && s.is_trial
                && match s.status {
                    SubscriptionStatus::InTrial
                    | SubscriptionStatus::Active
                    | SubscriptionStatus::PaymentPending => true,
                    SubscriptionStatus::NotStarted => !s.in_scope(product, resource),
                    SubscriptionStatus::Canceled | SubscriptionStatus::Expired => false,
                }
        })
}
