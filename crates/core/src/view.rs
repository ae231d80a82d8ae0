//! The JSON shapes of results (FORMAT.md §3): keys in camelCase, enum values in
//! SCREAMING_CASE, amounts as strings with the currency's minor units, instants in RFC 3339,
//! arrays always written, absent values left out. Objects are sorted by key, so the same
//! value always serializes to the same bytes.

use crate::customer::Customer;
use crate::invoice::{Invoice, InvoiceLine};
use crate::provision::{CheckoutRequest, ProvisionDecision};
use crate::subscription::{ScheduledUpdate, Subscription};
use crate::trial::TrialOutcome;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// An instant in RFC 3339 with a `Z` suffix.
#[must_use]
pub fn instant(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The SCREAMING_CASE (or other serde) name of an enum value.
#[must_use]
pub fn name<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn quantities(units: &std::collections::BTreeMap<crate::id::FeatureId, u64>) -> Value {
    Value::Array(
        units
            .iter()
            .map(|(feature, quantity)| json!({"featureId": feature.as_str(), "quantity": quantity}))
            .collect(),
    )
}

fn scheduled_update(update: &ScheduledUpdate) -> Value {
    let mut map = object(json!({
        "type": name(&update.kind),
        "scheduledAt": instant(update.scheduled_at),
        "planId": update.target.plan.as_str(),
        "billableFeatures": quantities(&update.target.units),
        "addons": update.target.addons.iter().map(|a| json!({"addonId": a.addon.as_str(), "quantity": a.quantity})).collect::<Vec<_>>(),
    }));
    insert_some(
        &mut map,
        "billingPeriod",
        update.target.billing_period.map(|p| name(&p)),
    );
    insert_some(
        &mut map,
        "unitQuantity",
        single_quantity(&update.target.units),
    );
    Value::Object(map)
}

fn single_quantity(units: &std::collections::BTreeMap<crate::id::FeatureId, u64>) -> Option<Value> {
    match units.values().collect::<Vec<_>>().as_slice() {
        [only] => Some(json!(only)),
        _ => None,
    }
}

/// A subscription.
#[must_use]
pub fn subscription(sub: &Subscription) -> Value {
    let mut map = object(json!({
        "id": sub.id.as_str(),
        "customerId": sub.customer.as_str(),
        "productId": sub.product.as_str(),
        "planId": sub.config.plan.as_str(),
        "planVersion": sub.config.plan_version,
        "status": name(&sub.status),
        "startDate": instant(sub.start_date),
        "billableFeatures": quantities(&sub.config.units),
        "addons": sub.config.addons.iter().map(|a| json!({"addonId": a.addon.as_str(), "quantity": a.quantity})).collect::<Vec<_>>(),
        "scheduledUpdates": sub.scheduled_updates.iter().map(scheduled_update).collect::<Vec<_>>(),
        "paymentCollectionMethod": name(&sub.payment_collection_method),
        "metadata": sub.metadata,
    }));
    insert_some(
        &mut map,
        "resourceId",
        sub.resource.as_ref().map(|r| json!(r.as_str())),
    );
    insert_some(
        &mut map,
        "billingPeriod",
        sub.config.billing_period.map(|p| name(&p)),
    );
    insert_some(&mut map, "endDate", sub.end_date.map(instant));
    insert_some(&mut map, "trialEndDate", sub.trial_end.map(instant));
    insert_some(
        &mut map,
        "currentBillingPeriodStart",
        sub.current_period.map(|p| instant(p.start)),
    );
    insert_some(
        &mut map,
        "currentBillingPeriodEnd",
        sub.current_period.map(|p| instant(p.end)),
    );
    insert_some(&mut map, "unitQuantity", single_quantity(&sub.config.units));
    insert_some(
        &mut map,
        "cancellationDate",
        sub.cancellation_date.map(instant),
    );
    insert_some(
        &mut map,
        "cancelReason",
        sub.cancel_reason.map(|r| name(&r)),
    );
    Value::Object(map)
}

fn line(line: &InvoiceLine) -> Value {
    json!({
        "description": &*line.description,
        "kind": name(&line.kind),
        "periodStart": instant(line.period.start),
        "periodEnd": instant(line.period.end),
        "quantity": line.quantity,
        "unitPrice": line.unit_price.normalize().to_string(),
        "amount": line.amount.to_string(),
    })
}

/// An invoice.
#[must_use]
pub fn invoice(invoice: &Invoice) -> Value {
    json!({
        "id": invoice.id,
        "customerId": invoice.customer.as_str(),
        "subscriptionId": invoice.subscription.as_str(),
        "issuedAt": instant(invoice.issued_at),
        "reason": name(&invoice.reason),
        "currency": invoice.currency.code(),
        "lines": invoice.lines.iter().map(line).collect::<Vec<_>>(),
        "subTotal": invoice.sub_total.to_string(),
        "discountAmount": invoice.discount_amount.to_string(),
        "creditApplied": invoice.credit_applied.to_string(),
        "creditIssued": invoice.credit_issued.to_string(),
        "tax": invoice.tax.to_string(),
        "total": invoice.total.to_string(),
    })
}

/// A customer.
#[must_use]
pub fn customer(customer: &Customer) -> Value {
    let mut map = object(json!({
        "customerId": customer.id.as_str(),
        "hasPaymentMethod": customer.has_payment_method,
        "timezone": customer.timezone.name(),
        "taxInclusive": customer.tax_inclusive,
        "isArchived": customer.archived,
        "creditBalance": customer.credit_balance.iter().map(|(currency, amount)| {
            json!({"currency": currency.code(), "amount": currency.round(*amount, crate::money::RoundingMode::HalfUp).to_string()})
        }).collect::<Vec<_>>(),
    }));
    insert_some(
        &mut map,
        "billingCountryCode",
        customer.country.map(|c| json!(c.as_str())),
    );
    insert_some(
        &mut map,
        "taxPercentage",
        customer
            .tax_percentage
            .map(|p| json!(p.normalize().to_string())),
    );
    Value::Object(map)
}

/// A trial decision.
#[must_use]
pub fn trial(outcome: &TrialOutcome) -> Value {
    json!({"decision": name(&outcome.decision), "reason": outcome.reason})
}

/// The provision result of `decision`, once applied: `subscription` is the subscription the
/// decision is about as it stands afterwards; `checkout_id` is what the billing provider
/// named the checkout, if one was opened. A checkout also names the pending subscription it
/// is for, the id `completeCheckout` takes (generated when the request named none).
#[must_use]
pub fn provision_result(
    decision: &ProvisionDecision,
    subscription_after: Option<&Subscription>,
    checkout_id: Option<&str>,
) -> Value {
    let mut map = object(json!({
        "status": name(&decision.status),
        "isScheduled": decision.is_scheduled,
        "changeType": name(&decision.change_type),
        "trial": trial(&decision.trial),
        "explanation": decision.explanation,
    }));
    insert_some(
        &mut map,
        "subscription",
        subscription_after.map(subscription),
    );
    insert_some(
        &mut map,
        "checkout",
        decision.checkout.as_ref().map(|c: &CheckoutRequest| {
            json!({"checkoutId": checkout_id.unwrap_or_default(), "subscriptionId": c.subscription_id, "successUrl": c.success_url, "cancelUrl": c.cancel_url})
        }),
    );
    insert_some(
        &mut map,
        "invoice",
        decision.effects.invoice.as_ref().map(invoice),
    );
    Value::Object(map)
}

fn totals(t: &crate::invoice::Totals) -> Map<String, Value> {
    object(json!({
        "subTotal": t.sub_total.to_string(),
        "discountAmount": t.discount_amount.to_string(),
        "totalExcludingTax": t.total_excluding_tax.to_string(),
        "tax": t.tax.to_string(),
        "total": t.total.to_string(),
    }))
}

/// An estimate.
#[must_use]
pub fn estimate(estimate: &crate::estimate::Estimate) -> Value {
    let mut map = totals(&estimate.now);
    map.insert(
        "subscription".to_owned(),
        Value::Object(totals(&estimate.recurring)),
    );
    map.insert(
        "lines".to_owned(),
        Value::Array(estimate.lines.iter().map(line).collect()),
    );
    map.insert(
        "isPlanDowngrade".to_owned(),
        json!(estimate.is_plan_downgrade),
    );
    map.insert(
        "hasScheduledUpdates".to_owned(),
        json!(estimate.has_scheduled_updates),
    );
    insert_some(
        &mut map,
        "currency",
        estimate.currency.map(|c| json!(c.code())),
    );
    insert_some(
        &mut map,
        "taxDetails",
        estimate
            .tax
            .map(|t| json!({"percentage": t.percentage.normalize().to_string(), "inclusive": t.inclusive})),
    );
    insert_some(
        &mut map,
        "billingPeriodRange",
        estimate
            .billing_period_range
            .map(|p| json!({"start": instant(p.start), "end": instant(p.end)})),
    );
    insert_some(
        &mut map,
        "proration",
        estimate.proration.map(|p| {
            json!({
                "prorationDate": instant(p.proration_date),
                "credit": p.credit.to_string(),
                "debit": p.debit.to_string(),
                "netAmount": p.net_amount.to_string(),
            })
        }),
    );
    Value::Object(map)
}
