//! The operations a scenario step can name (FORMAT.md §2): each parses its input, runs
//! through the engine at the step's instant and answers FORMAT.md §3 JSON. An operation
//! core cannot decide yet answers `Unsupported`; adding one is a handler and its row in
//! [`OPS`].

use chrono::{DateTime, Utc};
use pollster::block_on;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tollgate_adapters::{
    CheckoutId, Engine, Error, MemoryStorage, Provisioned, ScriptedBilling, Storage,
};
use tollgate_core::ErrorCode;
use tollgate_core::customer::CustomerState;
use tollgate_core::entitlement::{
    self, FallbackEntitlements, GetEntitlementRequest, GetEntitlementsRequest,
    GrantPromotionalEntitlementRequest,
};
use tollgate_core::id::{CustomerId, SubscriptionId};
use tollgate_core::journey::{CustomerFields, ProvisionCustomerRequest};
use tollgate_core::provision::ProvisionRequest;
use tollgate_core::usage::ReportUsageRequest;
use tollgate_core::view;

/// The engine a scenario plays on.
pub type RunEngine = Engine<MemoryStorage, ScriptedBilling>;

/// What a handler runs with.
pub struct Context<'a> {
    /// The engine.
    pub engine: &'a RunEngine,
    /// What entitlement checks answer for unknown customers.
    pub fallback: &'a FallbackEntitlements,
    /// The step's instant.
    pub now: DateTime<Utc>,
}

type Handler = fn(&Context<'_>, Option<&Value>) -> Result<Value, Error>;

/// How a scenario operation runs.
pub enum Op {
    /// Through this handler.
    Run(Handler),
    /// Not yet: core lacks what the text names.
    Missing(&'static str),
}

/// Every operation of FORMAT.md §2, by name.
pub const OPS: &[(&str, Op)] = &[
    ("provisionCustomer", Op::Run(provision_customer)),
    ("getCustomer", Op::Run(get_customer)),
    ("updateCustomer", Op::Run(update_customer)),
    ("archiveCustomer", Op::Missing("core's customer archiving")),
    ("provisionSubscription", Op::Run(provision_subscription)),
    ("completeCheckout", Op::Run(complete_checkout)),
    ("updateSubscription", Op::Missing(UPDATE)),
    ("cancelSubscription", Op::Run(cancel_subscription)),
    (
        "cancelScheduledUpdates",
        Op::Missing("core's removal of scheduled updates"),
    ),
    (
        "migrateSubscriptionToLatest",
        Op::Missing("core's migration decision"),
    ),
    (
        "transferSubscription",
        Op::Missing("core's transfer decision"),
    ),
    ("estimateSubscription", Op::Run(estimate_subscription)),
    ("estimateSubscriptionUpdate", Op::Missing(UPDATE)),
    ("reportUsage", Op::Run(report_usage)),
    (
        "grantPromotionalEntitlement",
        Op::Run(grant_promotional_entitlement),
    ),
    ("getEntitlement", Op::Run(get_entitlement)),
    ("getEntitlements", Op::Run(get_entitlements)),
    ("getSubscriptions", Op::Run(get_subscriptions)),
    ("getInvoices", Op::Run(get_invoices)),
    ("advance", Op::Run(advance)),
];

const UPDATE: &str = "core's in-place subscription update decision";

/// The operation named `name`.
pub fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|(n, _)| *n == name).map(|(_, op)| op)
}

/// Runs operation `name` with `input`.
pub fn run(context: &Context<'_>, name: &str, input: Option<&Value>) -> Result<Value, Error> {
    match find(name) {
        Some(Op::Run(handler)) => handler(context, input),
        Some(Op::Missing(what)) => Err(Error::new(
            ErrorCode::Unsupported,
            format!("`{name}` is not supported yet: it needs {what}"),
        )),
        None => Err(bad_input(format!("unknown operation `{name}`"))),
    }
}

fn bad_input(message: String) -> Error {
    Error::new(ErrorCode::BadUserInput, message)
}

/// Parses an operation's input, naming the JSON path of the first problem.
fn parse<T: DeserializeOwned>(input: Option<&Value>) -> Result<T, Error> {
    let input = input.unwrap_or(&Value::Null);
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            bad_input(format!("input: {}", e.inner()))
        } else {
            bad_input(format!("input.{path}: {}", e.inner()))
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CustomerInput {
    customer_id: CustomerId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateCustomerInput {
    customer_id: CustomerId,
    has_payment_method: Option<bool>,
    timezone: Option<String>,
    billing_country_code: Option<String>,
    #[serde(
        default,
        deserialize_with = "tollgate_core::money::serde_amount::option"
    )]
    tax_percentage: Option<Decimal>,
    tax_inclusive: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CheckoutInput {
    customer_id: CustomerId,
    subscription_id: SubscriptionId,
}

fn provisioned(answer: &Provisioned) -> Value {
    view::provision_result(
        &answer.decision,
        answer.subscription.as_ref(),
        answer.checkout_id.as_ref().map(CheckoutId::as_str),
    )
}

fn provision_customer(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: ProvisionCustomerRequest = parse(input)?;
    let answer = block_on(
        context
            .engine
            .provision_customer(&request, context.now, None),
    )?;
    let mut result = Map::new();
    result.insert("customer".to_owned(), view::customer(&answer.customer));
    result.insert(
        "subscriptionDecisionStrategy".to_owned(),
        view::name(&answer.strategy),
    );
    if let Some(subscription) = answer.subscription.and_then(|p| p.subscription) {
        result.insert("subscription".to_owned(), view::subscription(&subscription));
    }
    Ok(Value::Object(result))
}

fn get_customer(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: CustomerInput = parse(input)?;
    let state = block_on(context.engine.customer_state(&input.customer_id))?;
    Ok(json!({"customer": view::customer(&state.customer)}))
}

fn update_customer(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: UpdateCustomerInput = parse(input)?;
    let fields = CustomerFields {
        has_payment_method: input.has_payment_method,
        timezone: input.timezone,
        billing_country_code: input.billing_country_code,
        tax_percentage: input.tax_percentage,
        tax_inclusive: input.tax_inclusive,
    };
    let customer = block_on(
        context
            .engine
            .update_customer(&input.customer_id, &fields, None),
    )?;
    Ok(json!({"customer": view::customer(&customer)}))
}

fn provision_subscription(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: ProvisionRequest = parse(input)?;
    let answer = block_on(
        context
            .engine
            .provision_subscription(&request, context.now, None),
    )?;
    Ok(provisioned(&answer))
}

fn complete_checkout(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: CheckoutInput = parse(input)?;
    let answer = block_on(context.engine.complete_checkout(
        &input.customer_id,
        &input.subscription_id,
        context.now,
        None,
    ))?;
    Ok(provisioned(&answer))
}

/// The customer holding subscription `id`: scenario inputs that name a subscription do not
/// name its customer.
fn owner(context: &Context<'_>, id: &SubscriptionId) -> Result<CustomerId, Error> {
    for customer in context.engine.storage().customer_ids() {
        let state = block_on(context.engine.customer_state(&customer))?;
        if state.subscription(id.as_str()).is_some() {
            return Ok(customer);
        }
    }
    Err(Error::new(
        ErrorCode::SubscriptionNotFound,
        format!("subscription `{id}` does not exist"),
    ))
}

fn cancel_subscription(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: tollgate_core::cancellation::CancelRequest = parse(input)?;
    let customer = owner(context, &request.subscription_id)?;
    let answer = block_on(context.engine.cancel_subscription(
        &customer,
        &request,
        context.now,
        None,
    ))?;
    let mut result = Map::new();
    if let Some(sub) = &answer.subscription {
        result.insert("subscription".to_owned(), view::subscription(sub));
    }
    if let Some(invoice) = &answer.invoice {
        result.insert("invoice".to_owned(), view::invoice(invoice));
    }
    Ok(Value::Object(result))
}

fn get_subscriptions(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: CustomerInput = parse(input)?;
    let state = block_on(context.engine.customer_state(&input.customer_id))?;
    let subscriptions: Vec<Value> = state.subscriptions.iter().map(view::subscription).collect();
    Ok(json!({ "subscriptions": subscriptions }))
}

fn get_invoices(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: CustomerInput = parse(input)?;
    let state = block_on(context.engine.customer_state(&input.customer_id))?;
    let invoices: Vec<Value> = state.invoices.iter().map(view::invoice).collect();
    Ok(json!({ "invoices": invoices }))
}

fn estimate_subscription(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: ProvisionRequest = parse(input)?;
    let estimate = block_on(context.engine.estimate_subscription(&request, context.now))?;
    Ok(view::estimate(&estimate))
}

fn report_usage(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: ReportUsageRequest = parse(input)?;
    let report = block_on(context.engine.report_usage(&request, context.now, None))?;
    Ok(report.to_json())
}

fn grant_promotional_entitlement(
    context: &Context<'_>,
    input: Option<&Value>,
) -> Result<Value, Error> {
    let request: GrantPromotionalEntitlementRequest = parse(input)?;
    let grant = block_on(context.engine.grant_promotional_entitlement(
        &request,
        context.now,
        None,
    ))?;
    Ok(entitlement::grant_result(&grant))
}

/// The customer's stored state; `None` for an unknown one, which checks deny.
fn checked_state(
    context: &Context<'_>,
    customer: &CustomerId,
) -> Result<Option<CustomerState>, Error> {
    Ok(block_on(context.engine.storage().load(customer))?.map(|stored| stored.state))
}

fn get_entitlement(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: GetEntitlementRequest = parse(input)?;
    let state = checked_state(context, &request.customer_id)?;
    Ok(entitlement::get_entitlement(
        context.engine.catalog(),
        state.as_ref(),
        context.fallback,
        &request,
        context.now,
    ))
}

fn get_entitlements(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: GetEntitlementsRequest = parse(input)?;
    let state = checked_state(context, &request.customer_id)?;
    Ok(entitlement::get_entitlements(
        context.engine.catalog(),
        state.as_ref(),
        context.fallback,
        &request,
        context.now,
    ))
}

/// Only the clock moves, and the runner has moved it before the step.
fn advance(_: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    match input {
        None | Some(Value::Null) => Ok(json!({})),
        Some(_) => Err(bad_input("`advance` takes no input".to_owned())),
    }
}
