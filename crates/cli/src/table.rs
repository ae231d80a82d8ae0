//! `tollgate run --format table`: one readable line per step and per transition.

use serde_json::Value;

/// The heading of the table.
pub fn heading() -> String {
    format!("{:>4}  {:<20}  {:<28}  outcome", "step", "at", "op")
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
    format!("{index:>4}  {at:<20}  {op:<28}  {outcome}{mark}")
}

/// A transition's line.
pub fn event(event: &Value) -> String {
    let mut outcome = format!(
        "{} {}",
        text(event.get("customerId")),
        text(event.get("subscriptionId"))
    );
    if let Some(invoice) = event.get("invoice") {
        outcome = format!("{outcome} {}", invoice_summary(invoice));
    }
    format!(
        "{:>4}  {:<20}  {:<28}  {outcome}",
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
    if let Some(sub) = result.get("subscription") {
        parts.push(subscription_summary(sub));
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
