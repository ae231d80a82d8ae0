//! The one change classifier: is moving from one configuration to another an upgrade, a
//! downgrade or neither? Provisioning, updates, estimates and every output use it.
//!
//! In order (SPEC.md §3):
//! 1. the target plan inherits, transitively, from the current one → `UPGRADE`; the current
//!    inherits from the target → `DOWNGRADE`;
//! 2. `FREE` → `PAID`/`CUSTOM` → `UPGRADE`, the reverse `DOWNGRADE`, both `FREE` → `NONE`;
//! 3. a change of quantities alone (same plan version, billing period, country and add-ons):
//!    more of everything that changes → `UPGRADE`, fewer → `DOWNGRADE` (SPEC.md §5);
//! 4. otherwise the recurring amounts normalized per month (plan, units and add-ons at their
//!    quantities, in the current configuration's currency) decide: higher → `UPGRADE`,
//!    lower → `DOWNGRADE`; equal → the longer billing period is the `UPGRADE`; still equal
//!    → `NONE`. The target is priced as it will be billed (its own country's price set)
//!    when that is in the current currency, else re-priced in the current country; when
//!    even that is in another currency the amounts cannot be compared, and the change is
//!    `NONE` (README, "A plan change into another currency").

use crate::catalog::{Catalog, PricingType};
use crate::error::{Error, ErrorCode};
use crate::pricing::{Configuration, RecurringAmount, recurring_amount};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// What a request does to the scope's live non-trial subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeType {
    /// Nothing is replaced or changed: a new subscription.
    New,
    /// Up.
    Upgrade,
    /// Down.
    Downgrade,
    /// Neither.
    None,
}

/// Classifies a move from `current` to `target`.
///
/// # Errors
/// The pricing errors of either configuration (`PlanNotFound`, `BillingPeriodMissingError`,
/// …). Amounts in different currencies are no error: they decide nothing.
pub fn classify(
    catalog: &Catalog,
    current: &Configuration,
    target: &Configuration,
) -> Result<ChangeType, Error> {
    classify_priced(catalog, current, target, None)
}

/// [`classify`], reusing `target_quote` (the target's recurring amount in its own country,
/// already computed by the caller).
pub(crate) fn classify_priced(
    catalog: &Catalog,
    current: &Configuration,
    target: &Configuration,
    target_quote: Option<&RecurringAmount>,
) -> Result<ChangeType, Error> {
    let missing = |c: &Configuration| {
        Error::new(
            ErrorCode::PlanNotFound,
            format!(
                "plan `{}` version {} does not exist",
                c.plan, c.plan_version
            ),
        )
    };
    let from = catalog
        .plan(current.plan.as_str(), current.plan_version)
        .ok_or_else(|| missing(current))?;
    let to = catalog
        .plan(target.plan.as_str(), target.plan_version)
        .ok_or_else(|| missing(target))?;
    if from.id != to.id {
        if catalog.inherits_from(to, &from.id) {
            return Ok(ChangeType::Upgrade);
        }
        if catalog.inherits_from(from, &to.id) {
            return Ok(ChangeType::Downgrade);
        }
    }
    match (
        from.pricing_type == PricingType::Free,
        to.pricing_type == PricingType::Free,
    ) {
        (true, true) => return Ok(ChangeType::None),
        (true, false) => return Ok(ChangeType::Upgrade),
        (false, true) => return Ok(ChangeType::Downgrade),
        (false, false) => {}
    }
    if let Some(direction) = by_quantity(current, target) {
        return Ok(direction);
    }
    let before = recurring_amount(catalog, current)?;
    let billed;
    let as_billed = match target_quote {
        Some(quote) => quote,
        None => {
            billed = recurring_amount(catalog, target)?;
            &billed
        }
    };
    let repriced;
    let after = if comparable(&before, as_billed) {
        as_billed
    } else {
        // Priced in another currency (another country's set, or the default set a country
        // falls back to): the same target in the current country may come in the current
        // currency. The re-pricing is only a yardstick: a failure of it (a quantity outside
        // the current country's bounds, say) leaves the amounts incomparable.
        let mut in_current_country = target.clone();
        in_current_country.country = current.country;
        repriced = recurring_amount(catalog, &in_current_country).ok();
        match repriced.as_ref().filter(|q| comparable(&before, q)) {
            Some(quote) => quote,
            None => return Ok(ChangeType::None),
        }
    };
    let by_amount = after.monthly()?.cmp(&before.monthly()?);
    let by_period = target
        .billing_period
        .map(|p| p.months())
        .cmp(&current.billing_period.map(|p| p.months()));
    Ok(match by_amount.then(by_period) {
        Ordering::Greater => ChangeType::Upgrade,
        Ordering::Less => ChangeType::Downgrade,
        Ordering::Equal => ChangeType::None,
    })
}

/// Whether two amounts can be compared: in one currency, or one of them priced at nothing.
fn comparable(a: &RecurringAmount, b: &RecurringAmount) -> bool {
    match (a.currency, b.currency) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The direction of a change of quantities alone (same plan version, billing period,
/// country and add-ons): more of everything that changes is an `UPGRADE`, fewer a
/// `DOWNGRADE` (SPEC.md §5), whatever tiers or packages make of the amount. `None` for any
/// other change, or one with both more and fewer, which the amounts decide (FORMAT.md §6).
fn by_quantity(current: &Configuration, target: &Configuration) -> Option<ChangeType> {
    let same_frame = current.plan == target.plan
        && current.plan_version == target.plan_version
        && current.billing_period == target.billing_period
        && current.country == target.country
        && current.units.len() == target.units.len()
        && current.addons.len() == target.addons.len();
    if !same_frame {
        return None;
    }
    let units = current
        .units
        .iter()
        .map(|(feature, &before)| target.units.get(feature).map(|&after| (before, after)));
    let addons = current.addons.iter().map(|before| {
        target
            .addons
            .iter()
            .find(|after| after.addon == before.addon && after.version == before.version)
            .map(|after| (u64::from(before.quantity), u64::from(after.quantity)))
    });
    let (mut more, mut fewer) = (false, false);
    for pair in units.chain(addons) {
        let (before, after) = pair?;
        more |= after > before;
        fewer |= after < before;
    }
    match (more, fewer) {
        (true, false) => Some(ChangeType::Upgrade),
        (false, true) => Some(ChangeType::Downgrade),
        _ => None,
    }
}
