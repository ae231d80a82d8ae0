//! `cancelSubscription` (SPEC.md §4, FORMAT.md §6 "Ends").
//!
//! A cancellation is a pending end at the instant the request chooses; the clock then ends
//! the subscription exactly as it ends any other: `IMMEDIATE` ends it now, crediting the
//! unused rest of what was charged (unless `prorate: false`) on a `CANCELLATION` invoice;
//! `END_OF_BILLING_PERIOD` ends it at its period end (a trial at its trial end) without
//! credit; `SPECIFIC_DATE` ends it at `endDate` (a future date, for a trial at most its
//! end), crediting the rest of the period containing that date unless `prorate: false`.
//! With action `DEFAULT` the product's end setup then applies; `REVOKE_ENTITLEMENTS`
//! skips it. Without `cancellationTime`, the product's default cancellation time decides.
//!
//! A change scheduled on the subscription is dropped when the cancellation comes at or
//! before it (the subscription would be gone when it is due). One due before the
//! cancellation stays: it applies as scheduled, and a plan change hands the pending
//! cancellation to the subscription that replaces this one, which then ends at the same
//! instant, crediting what it was charged beyond it unless `prorate: false` (so a downgrade
//! at the period end followed by a later cancellation bills the cheaper plan until the end).
//! An update asked after the cancellation that starts a new period now leaves unused time
//! the cancellation's `prorate: false` could not have meant to give up: it is credited.

use crate::catalog::{CancellationTime, Catalog};
use crate::customer::CustomerState;
use crate::error::{Error, ErrorCode};
use crate::id::SubscriptionId;
use crate::invoice::Invoice;
use crate::lifecycle;
use crate::provision::{Effects, Ending};
use crate::settings::Settings;
use crate::subscription::{CancelReason, SubscriptionStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// When a cancellation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationTiming {
    /// Now.
    Immediate,
    /// At the end of the billing period (of the trial, for a trial).
    EndOfBillingPeriod,
    /// At `endDate`.
    SpecificDate,
}

/// What a cancellation does to entitlements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationAction {
    /// The product's end setup applies (downgrade to the free plan, or nothing).
    #[default]
    Default,
    /// Entitlements are revoked: no end setup.
    RevokeEntitlements,
}

/// A `cancelSubscription` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CancelRequest {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// When (default: the product's cancellation time).
    pub cancellation_time: Option<CancellationTiming>,
    /// The date, for `SPECIFIC_DATE`.
    pub end_date: Option<DateTime<Utc>>,
    /// What happens to entitlements (default `DEFAULT`).
    pub action: Option<CancellationAction>,
    /// Whether unused time is credited (default true; ignored at a period end).
    pub prorate: Option<bool>,
}

/// The decision of a `cancelSubscription` request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CancelDecision {
    /// The customer's state afterwards.
    pub state: CustomerState,
    /// The canceled subscription.
    pub subscription: SubscriptionId,
    /// The cancellation's credit invoice, if one was issued now.
    pub invoice: Option<Invoice>,
    /// What changed, for the billing provider.
    pub effects: Effects,
}

fn invalid_date(message: String) -> Error {
    Error::new(ErrorCode::InvalidCancellationDate, message)
}

/// Decides a `cancelSubscription` request for the customer in `state` at `now`.
///
/// # Errors
/// `CustomerIsArchived`, `SubscriptionNotFound`, `SubscriptionAlreadyCanceledOrExpired`,
/// `InvalidCancellationDate` (a `SPECIFIC_DATE` without a future `endDate`, or after a
/// trial's end), `InvalidArgumentError` for an instant past 9999-12-31, and the clock's
/// errors.
pub fn cancel_subscription(
    catalog: &Catalog,
    state: &CustomerState,
    request: &CancelRequest,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<CancelDecision, Error> {
    crate::period::check_instants(&[("now", Some(now)), ("endDate", request.end_date)])?;
    let id = request.subscription_id.as_str();
    let sub = state.open_subscription(id)?;
    let default = catalog
        .product(sub.product.as_str())
        .map_or(CancellationTime::Immediate, |p| p.journey.cancellation_time);
    let timing = request.cancellation_time.unwrap_or(match default {
        CancellationTime::Immediate => CancellationTiming::Immediate,
        CancellationTime::EndOfBillingPeriod => CancellationTiming::EndOfBillingPeriod,
    });
    let period_end = if sub.is_trial {
        sub.trial_end
    } else {
        sub.current_period.map(|p| p.end)
    };
    let (at, reason, credit) = match timing {
        CancellationTiming::Immediate => (
            now,
            CancelReason::Immediate,
            request.prorate.unwrap_or(true),
        ),
        // At the period end nothing is left to credit; the subscription that replaces this
        // one by a change scheduled before then may still have some (see below). A change
        // asked later that starts a new period credits its rest whatever `prorate` said
        // (`provision`'s change in place).
        CancellationTiming::EndOfBillingPeriod => match period_end {
            Some(end) if end > now => (
                end,
                CancelReason::ScheduledCancellation,
                request.prorate.unwrap_or(true),
            ),
            _ => (now, CancelReason::Immediate, false),
        },
        CancellationTiming::SpecificDate => {
            let date = request
                .end_date
                .ok_or_else(|| invalid_date("SPECIFIC_DATE needs `endDate`".to_owned()))?;
            if date <= now {
                return Err(invalid_date(format!("`{date}` is not in the future")));
            }
            if sub.is_trial && sub.trial_end.is_some_and(|end| date > end) {
                return Err(invalid_date(format!("`{date}` is after the trial's end")));
            }
            (
                date,
                CancelReason::ScheduledCancellation,
                request.prorate.unwrap_or(true),
            )
        }
    };
    let mut pending = state.clone();
    if sub.status == SubscriptionStatus::NotStarted && at <= sub.start_date {
        // It never starts: a trial that was to convert into it ends by its own rule.
        if let Some(trial) = pending.converting_into_mut(sub) {
            trial.clear_pending_cancellation();
        }
    }
    let target = pending.subscription_mut(id)?;
    target.schedule_cancellation(
        at,
        reason,
        credit,
        request.action.unwrap_or_default() == CancellationAction::RevokeEntitlements,
    );
    // A change scheduled before the end still happens, and the subscription it leads to
    // ends at `at` in its place; one due at or after the end would never apply.
    target.scheduled_updates.retain(|u| u.scheduled_at < at);
    let before = pending.subscriptions.len();
    let invoices_before = pending.invoices.len();
    let (after, _events) = lifecycle::advance(catalog, &pending, now, settings)?;
    let invoice = after.invoices.get(invoices_before).cloned();
    let mut effects = Effects::default();
    effects.end.push(Ending {
        subscription: request.subscription_id.clone(),
        at,
        reason,
    });
    effects.create = after.subscriptions.iter().skip(before).cloned().collect();
    effects.invoice = invoice.clone();
    Ok(CancelDecision {
        state: after,
        subscription: request.subscription_id.clone(),
        invoice,
        effects,
    })
}

/// The decision of an `archiveCustomer` request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ArchiveDecision {
    /// The customer's state afterwards.
    pub state: CustomerState,
    /// What changed, for the billing provider.
    pub effects: Effects,
    /// What the clock did on the way: the subscriptions it ended and the invoices that
    /// settled them.
    pub events: Vec<lifecycle::Event>,
}

/// Archives the customer in `state` at `now` (FORMAT.md §6 "Ends"): the clock first moves
/// to `now`, then every subscription that has not ended (waiting ones included) is
/// canceled now with `CustomerArchived`, without credit for unused time and without the
/// product's end setup; pending checkouts are dropped. What is owed or owed back is still
/// settled, as any cancellation settles it: prorations waiting for the next invoice
/// (`CREATE_PRORATIONS`) and the usage of the period that closes go on each subscription's
/// `CANCELLATION` invoice (a credit left over goes to the customer's balance). Reads still
/// answer afterwards; every change fails with `CustomerIsArchived`.
///
/// # Errors
/// `CustomerIsArchived` when it already is, `InvalidArgumentError` for a `now` past
/// 9999-12-31, and the clock's errors.
pub fn archive_customer(
    catalog: &Catalog,
    state: &CustomerState,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<ArchiveDecision, Error> {
    crate::period::check_instants(&[("now", Some(now))])?;
    state.ensure_active()?;
    let (mut pending, mut events) = lifecycle::advance(catalog, state, now, settings)?;
    let mut effects = Effects::default();
    for sub in pending
        .subscriptions
        .iter_mut()
        .filter(|s| !s.status.is_ended())
    {
        sub.schedule_cancellation(now, CancelReason::CustomerArchived, false, true);
        effects.end.push(Ending {
            subscription: sub.id.clone(),
            at: now,
            reason: CancelReason::CustomerArchived,
        });
    }
    let (mut after, ended) = lifecycle::advance(catalog, &pending, now, settings)?;
    events.extend(ended);
    after.customer.archived = true;
    after.pending_checkouts.clear();
    Ok(ArchiveDecision {
        state: after,
        effects,
        events,
    })
}
