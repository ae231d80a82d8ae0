//! `tollgate run --format table`: one readable line per step and per transition.

use serde_json::Value;

/// The heading of the table.
pub fn heading() -> String {
    format!("{:>4}  {:<20}  {:<32}  outcome", "step", "at", "op")
}

/// A step's line.
pub fn step(index: usize, at: &str, op: &str, output: &Value, checked: bool) -> String {
    let outcome = match (output.get("result"), output.get("error")) {
        (Some(result), _) => summary(result),
        (None, Some(error)) => format!(
            "error {}: {}",
            text(error.get("code")),
            text(error.get("message"))
        ),
        (None, None) => String::new(),
    };
    let mark = if checked { "  [ok]" } else { "" };
    format!("{index:>4}  {at:<20}  {op:<32}  {outcome}{mark}")
}

/// A transition's line.
pub fn event(event: &Value) -> String {
    let mut outcome = format!(
        "{} {}",
        text(event.get("customerId")),
        text(event.get("subscriptionId"))
    );
    if let Some(feature) = event.get("featureId") {
        outcome = format!("{outcome} {}", text(Some(feature)));
    }
    if let Some(invoice) = event.get("invoice") {
        outcome = format!("{outcome} {}", invoice_summary(invoice));
    }
    format!(
        "{:>4}  {:<20}  {:<32}  {outcome}",
        "",
        text(event.get("at")),
        format!("event {}", text(event.get("type")))
    )
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn subscription_summary(sub: &Value) -> String {
    format!(
        "{} {} {}",
        text(sub.get("id")),
        text(sub.get("planId")),
        text(sub.get("status"))
    )
}

fn invoice_summary(invoice: &Value) -> String {
    format!(
        "invoice {} {} {}",
        text(invoice.get("reason")),
        text(invoice.get("total")),
        text(invoice.get("currency"))
    )
}

fn entitlement_summary(entitlement: &Value, access: &Value) -> String {
    let mut line = format!(
        "{} {}",
        text(entitlement.get("featureId")),
        if access == &Value::Bool(true) {
            "granted".to_owned()
        } else {
            format!("denied ({})", text(entitlement.get("accessDeniedReason")))
        }
    );
    if let Some(limit) = entitlement.get("usageLimit") {
        line = format!(
            "{line}, usage {} of {}",
            text(entitlement.get("currentUsage")),
            text(Some(limit))
        );
    }
    line
}

fn listing(what: &str, items: &[Value], summary: fn(&Value) -> String) -> String {
    let listed: Vec<String> = items.iter().map(summary).collect();
    match listed.as_slice() {
        [] => format!("no {what}"),
        _ => format!("{} {what}: {}", listed.len(), listed.join("; ")),
    }
}

/// The parts of a result worth a glance, whatever the operation.
fn summary(result: &Value) -> String {
    let mut parts = Vec::new();
    for key in ["status", "changeType", "subscriptionDecisionStrategy"] {
        if let Some(value) = result.get(key) {
            parts.push(text(Some(value)));
        }
    }
    if result.get("isScheduled") == Some(&Value::Bool(true)) {
        parts.push("scheduled".to_owned());
    }
    if let Some(customer) = result.get("customer") {
        parts.push(format!(
            "customer {} (payment method: {})",
            text(customer.get("customerId")),
            if customer.get("hasPaymentMethod") == Some(&Value::Bool(true)) {
                "yes"
            } else {
                "no"
            }
        ));
    }
    if let Some(range) = result.get("billingPeriodRange") {
        parts.push(format!(
            "estimate {} {} now, period {} to {}, then {}",
            text(result.get("total")),
            text(result.get("currency")),
            text(range.get("start")),
            text(range.get("end")),
            text(result.get("subscription").and_then(|s| s.get("total")))
        ));
    } else if let Some(sub) = result.get("subscription") {
        parts.push(subscription_summary(sub));
    }
    if let Some(access) = result.get("hasAccess") {
        parts.push(entitlement_summary(result, access));
    } else if let Some(usage) = result.get("currentUsage") {
        parts.push(format!("usage {}", text(Some(usage))));
    }
    if let Some(Value::Array(entitlements)) = result.get("entitlements") {
        parts.push(listing("entitlements", entitlements, |e| {
            entitlement_summary(e, e.get("hasAccess").unwrap_or(&Value::Null))
        }));
    }
    if let Some(grant) = result.get("promotionalEntitlement") {
        parts.push(format!("granted {}", text(grant.get("featureId"))));
    }
    if let Some(checkout) = result.get("checkout") {
        parts.push(format!("checkout {}", text(checkout.get("checkoutId"))));
    }
    if let Some(invoice) = result.get("invoice") {
        parts.push(invoice_summary(invoice));
    }
    if let Some(Value::Array(subs)) = result.get("subscriptions") {
        parts.push(listing("subscriptions", subs, subscription_summary));
    }
    if let Some(Value::Array(invoices)) = result.get("invoices") {
        parts.push(listing("invoices", invoices, invoice_summary));
    }
    if parts.is_empty() {
        "ok".to_owned()
    } else {
        parts.join(" ")
    }
}
