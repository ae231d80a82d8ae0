//! The operations a scenario step can name (FORMAT.md §2): each parses its input, runs
//! through the engine at the step's instant and answers FORMAT.md §3 JSON. Adding one is a
//! handler and its row in [`OPS`].

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
use tollgate_core::update::{
    CancelScheduledRequest, MigrateRequest, TransferRequest, UpdateRequest,
};
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

/// How a scenario operation runs: it parses its input and answers its result.
pub type Handler = fn(&Context<'_>, Option<&Value>) -> Result<Value, Error>;

/// Every operation of FORMAT.md §2, by name.
pub const OPS: &[(&str, Handler)] = &[
    ("provisionCustomer", provision_customer),
    ("getCustomer", get_customer),
    ("updateCustomer", update_customer),
    ("archiveCustomer", archive_customer),
    ("provisionSubscription", provision_subscription),
    ("completeCheckout", complete_checkout),
    ("updateSubscription", update_subscription),
    ("cancelSubscription", cancel_subscription),
    ("cancelScheduledUpdates", cancel_scheduled_updates),
    ("migrateSubscriptionToLatest", migrate_subscription),
    ("transferSubscription", transfer_subscription),
    ("estimateSubscription", estimate_subscription),
    ("estimateSubscriptionUpdate", estimate_subscription_update),
    ("reportUsage", report_usage),
    ("grantPromotionalEntitlement", grant_promotional_entitlement),
    ("getEntitlement", get_entitlement),
    ("getEntitlements", get_entitlements),
    ("getSubscriptions", get_subscriptions),
    ("getInvoices", get_invoices),
    ("advance", advance),
];

/// The operation named `name`.
pub fn find(name: &str) -> Option<&'static Handler> {
    OPS.iter().find(|(n, _)| *n == name).map(|(_, op)| op)
}

/// Runs operation `name` with `input`.
pub fn run(context: &Context<'_>, name: &str, input: Option<&Value>) -> Result<Value, Error> {
    match find(name) {
        Some(handler) => handler(context, input),
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
    let named = request
        .subscription_params
        .as_ref()
        .and_then(|params| params.get("subscriptionId"))
        .and_then(Value::as_str);
    if let Some(id) = named {
        unused_elsewhere(context, &request.customer_id, id)?;
    }
    let answer = block_on(
        context
            .engine
            .provision_customer(&request, context.now, None),
    )?;
    // The subscription's decision is answered as `provisionSubscription` answers it (its
    // `status`, `checkout` while payment is required, `trial`, `invoice`, ...), so a host
    // reads a checkout to send the customer to the same way; `subscription` stays the
    // subscription as saved, absent while payment is required.
    let mut result = match answer.subscription.as_ref().map(provisioned) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    result.insert("customer".to_owned(), view::customer(&answer.customer));
    result.insert(
        "subscriptionDecisionStrategy".to_owned(),
        view::name(&answer.strategy),
    );
    Ok(Value::Object(result))
}

fn get_customer(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: CustomerInput = parse(input)?;
    let state = read_at_now(context, &input.customer_id)?;
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
    let customer = block_on(context.engine.update_customer(
        &input.customer_id,
        &fields,
        context.now,
        None,
    ))?;
    Ok(json!({"customer": view::customer(&customer)}))
}

fn provision_subscription(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: ProvisionRequest = parse(input)?;
    if let Some(id) = &request.subscription_id {
        unused_elsewhere(context, &request.customer_id, id.as_str())?;
    }
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

/// The state of `customer` at the step's instant. The run has moved every customer's clock
/// there already; one whose clock could not move answers with the clock's error, as its
/// changes do, rather than with a state the clock has left behind.
fn read_at_now(context: &Context<'_>, customer: &CustomerId) -> Result<CustomerState, Error> {
    block_on(context.engine.customer_state_at(customer, context.now))
}

/// Fails with `InvalidArgumentError` when a customer other than `customer` holds subscription
/// `id`: scenario inputs that name a subscription do not name its customer, so an id names
/// one subscription across the scenario.
fn unused_elsewhere(context: &Context<'_>, customer: &CustomerId, id: &str) -> Result<(), Error> {
    for other in context.engine.storage().customer_ids() {
        if &other == customer {
            continue;
        }
        // `<customer>-sub-<n>` is the form of the ids Tollgate gives that customer's
        // subscriptions: taken by another customer, it would name two subscriptions.
        if tollgate_core::id::is_numbered(id, other.as_str(), "sub") {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!(
                    "subscription id `{id}` has the form of the ids given to customer `{other}`'s subscriptions: a scenario names each subscription by its id alone"
                ),
            ));
        }
        let state = block_on(context.engine.customer_state(&other))?;
        let held = state.subscription(id).is_some()
            || state
                .pending_checkouts
                .iter()
                .any(|p| p.subscription_id.as_str() == id);
        if held {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!(
                    "subscription `{id}` belongs to customer `{other}`: a scenario names each subscription by its id alone"
                ),
            ));
        }
    }
    Ok(())
}

/// The customer holding subscription `id`: scenario inputs that name a subscription do not
/// name its customer.
///
/// # Errors
/// `SubscriptionNotFound` when no customer holds it; `InvalidArgumentError` when two do
/// (the scenario cannot say which it means).
fn owner(context: &Context<'_>, id: &SubscriptionId) -> Result<CustomerId, Error> {
    let mut found: Option<CustomerId> = None;
    for customer in context.engine.storage().customer_ids() {
        let state = block_on(context.engine.customer_state(&customer))?;
        if state.subscription(id.as_str()).is_none() {
            continue;
        }
        if let Some(first) = &found {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!(
                    "subscription `{id}` is held by customers `{first}` and `{customer}`: a scenario names each subscription by its id alone"
                ),
            ));
        }
        found = Some(customer);
    }
    found.ok_or_else(|| {
        Error::new(
            ErrorCode::SubscriptionNotFound,
            format!("subscription `{id}` does not exist"),
        )
    })
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

/// The answer of a change to an existing subscription: the subscription as saved, and
/// the keys FORMAT.md §2 lists for the operation.
fn changed(answer: &Provisioned, with_direction: bool, with_invoice: bool) -> Value {
    let mut result = Map::new();
    if let Some(sub) = &answer.subscription {
        result.insert("subscription".to_owned(), view::subscription(sub));
    }
    if with_direction {
        result.insert(
            "isScheduled".to_owned(),
            json!(answer.decision.is_scheduled),
        );
        result.insert(
            "changeType".to_owned(),
            view::name(&answer.decision.change_type),
        );
    }
    if let Some(invoice) = answer
        .decision
        .effects
        .invoice
        .as_ref()
        .filter(|_| with_invoice)
    {
        result.insert("invoice".to_owned(), view::invoice(invoice));
    }
    Value::Object(result)
}

fn update_subscription(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: UpdateRequest = parse(input)?;
    let customer = owner(context, &request.subscription_id)?;
    let answer = block_on(context.engine.update_subscription(
        &customer,
        &request,
        context.now,
        None,
    ))?;
    Ok(changed(&answer, true, true))
}

fn cancel_scheduled_updates(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: CancelScheduledRequest = parse(input)?;
    let customer = owner(context, &request.subscription_id)?;
    let answer = block_on(context.engine.cancel_scheduled_updates(
        &customer,
        &request,
        context.now,
        None,
    ))?;
    Ok(changed(&answer, false, false))
}

fn migrate_subscription(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: MigrateRequest = parse(input)?;
    let customer = owner(context, &request.subscription_id)?;
    let answer = block_on(context.engine.migrate_subscription(
        &customer,
        &request,
        context.now,
        None,
    ))?;
    Ok(changed(&answer, false, true))
}

fn transfer_subscription(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let request: TransferRequest = parse(input)?;
    let customer = owner(context, &request.subscription_id)?;
    let answer = block_on(context.engine.transfer_subscription(
        &customer,
        &request,
        context.now,
        None,
    ))?;
    Ok(changed(&answer, false, false))
}

fn archive_customer(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: CustomerInput = parse(input)?;
    let customer = block_on(context.engine.archive_customer(
        &input.customer_id,
        context.now,
        None,
    ))?;
    Ok(json!({"customer": view::customer(&customer)}))
}

fn estimate_subscription_update(
    context: &Context<'_>,
    input: Option<&Value>,
) -> Result<Value, Error> {
    let request: UpdateRequest = parse(input)?;
    let customer = owner(context, &request.subscription_id)?;
    let estimate = block_on(context.engine.estimate_subscription_update(
        &customer,
        &request,
        context.now,
    ))?;
    Ok(view::estimate(&estimate))
}

fn get_subscriptions(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: CustomerInput = parse(input)?;
    let state = read_at_now(context, &input.customer_id)?;
    let subscriptions: Vec<Value> = state.subscriptions.iter().map(view::subscription).collect();
    Ok(json!({ "subscriptions": subscriptions }))
}

fn get_invoices(context: &Context<'_>, input: Option<&Value>) -> Result<Value, Error> {
    let input: CustomerInput = parse(input)?;
    let state = read_at_now(context, &input.customer_id)?;
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
