//! Invariants every decision and every stored state must keep, checked by the decision
//! fuzz targets after each step.

use std::collections::BTreeMap;
use tollgate_core::customer::CustomerState;
use tollgate_core::invoice::Invoice;

/// Each (product, resource) scope has at most one live trial and one live non-trial
/// subscription (SPEC.md §3: a new one replaces the live one of its kind).
pub fn scopes(state: &CustomerState, context: &str) {
    let mut live: BTreeMap<(&str, Option<&str>, bool), &str> = BTreeMap::new();
    for sub in state.subscriptions.iter().filter(|s| s.status.is_live()) {
        let scope = (
            sub.product.as_str(),
            sub.resource.as_ref().map(|r| r.as_str()),
            sub.is_trial,
        );
        if let Some(other) = live.insert(scope, sub.id.as_str()) {
            panic!(
                "{context}: scope {scope:?} holds two live subscriptions, `{other}` and `{}`:\n{:#?}",
                sub.id, state.subscriptions
            );
        }
    }
}

/// No invoice charges a negative total: credit is carried to the balance instead.
pub fn invoice(invoice: &Invoice, context: &str) {
    assert!(
        invoice.total.is_sign_positive() || invoice.total.is_zero(),
        "{context}: invoice `{}` has a negative total: {invoice:#?}",
        invoice.id
    );
}

/// Every invoice of `state` (see [`invoice`]).
pub fn invoices(state: &CustomerState, context: &str) {
    for i in &state.invoices {
        invoice(i, context);
    }
}

/// A failure carries a stable code and a message.
pub fn error(code: &str, message: &str, context: &str) {
    assert!(
        !code.is_empty(),
        "{context}: an error without a code: {message}"
    );
    assert!(
        !message.is_empty(),
        "{context}: error `{code}` without a message"
    );
}
