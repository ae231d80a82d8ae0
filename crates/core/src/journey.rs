//! `provisionCustomer`: create or update a customer and give it its first subscription as
//! the product's journey start setup says (FORMAT.md §6):
//! - `PLAN_SELECTION`: the requested plan (`REQUESTED_PLAN`);
//! - `FREE_PLAN`: the product's free start plan, whatever was asked (`PREDEFINED_FREE_PLAN`);
//! - `TRIAL_PERIOD`: a trial of the start plan (`PREDEFINED_TRIAL_PLAN`);
//! - no `subscriptionParams`: no subscription (`SKIPPED_SUBSCRIPTION_CREATION`).
//!
//! The start setup is for a customer starting the product: one who already holds a
//! subscription of the request's scope (the product, and the `resourceId` of a product with
//! multiple subscriptions) that has not ended (active or in its trial, a pending cancellation
//! included, or waiting for its start date or a payment method) gets the request decided as
//! asked (`REQUESTED_PLAN`), as `provisionSubscription` decides it. A pending checkout is no
//! subscription yet: a customer with one only still starts the product.
//!
//! The request's `subscriptionId`, `resourceId`, `startDate`, `metadata` and collection
//! method carry over to a predefined plan; its plan choices (version, quantities, add-ons,
//! trial settings, codes) do not. A trial of the start plan keeps the requested billing
//! period, which the trial converts into; a request without one gets the start plan's only
//! billing period, and one whose start plan has several must name it
//! (`BillingPeriodMissingError`). `subscriptionParams` name no customer, or the request's
//! own: another is `InvalidArgumentError`.

use crate::catalog::{Catalog, StartSetup};
use crate::coupon::Redemptions;
use crate::customer::{Customer, CustomerState};
use crate::error::{Error, ErrorCode};
use crate::id::{CountryCode, CustomerId};
use crate::lifecycle::collect_pending_payments;
use crate::money;
use crate::provision::{
    ProvisionDecision, ProvisionRequest, decide_collecting_payments, provision,
};
use crate::settings::Settings;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A `provisionCustomer` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProvisionCustomerRequest {
    /// The customer.
    pub customer_id: CustomerId,
    /// Whether a payment method is on file.
    pub has_payment_method: Option<bool>,
    /// IANA time zone name (default UTC).
    pub timezone: Option<String>,
    /// Billing country.
    pub billing_country_code: Option<String>,
    /// Tax percentage of its invoices.
    #[serde(default, deserialize_with = "money::serde_amount::option")]
    pub tax_percentage: Option<Decimal>,
    /// Whether prices include the tax.
    pub tax_inclusive: Option<bool>,
    /// A provision input without `customerId`; absent or `null`: no subscription.
    pub subscription_params: Option<serde_json::Value>,
}

/// How the first subscription was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionDecisionStrategy {
    /// The plan asked for.
    RequestedPlan,
    /// The product's free start plan.
    PredefinedFreePlan,
    /// A trial of the product's start plan.
    PredefinedTrialPlan,
    /// No subscription was asked for.
    SkippedSubscriptionCreation,
}

/// The decision of a `provisionCustomer` request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CustomerDecision {
    /// The customer's state with its fields set and its pending payments collected
    /// ([`CustomerDecision::collected`]), before the subscription's effects.
    pub state: CustomerState,
    /// How the subscription was chosen.
    pub strategy: SubscriptionDecisionStrategy,
    /// The subscription's decision, if one was asked for.
    pub subscription: Option<ProvisionDecision>,
    /// What the clock did to reach `now`, and the `PAYMENT_PENDING` subscriptions a payment
    /// method of the customer activated ([`crate::lifecycle::collect_pending_payments`]),
    /// with the invoices they issued; already in `state`.
    pub collected: Vec<crate::lifecycle::Event>,
}

impl CustomerDecision {
    /// The customer's state after the decision.
    #[must_use]
    pub fn into_state(self, now: DateTime<Utc>) -> CustomerState {
        let mut state = self.state;
        if let Some(decision) = &self.subscription {
            decision.apply(&mut state, now);
        }
        state
    }
}

/// The customer fields a request may set; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomerFields {
    /// Whether a payment method is on file.
    pub has_payment_method: Option<bool>,
    /// IANA time zone name.
    pub timezone: Option<String>,
    /// Billing country.
    pub billing_country_code: Option<String>,
    /// Tax percentage.
    pub tax_percentage: Option<Decimal>,
    /// Whether prices include the tax.
    pub tax_inclusive: Option<bool>,
}

/// Sets `fields` on `customer`.
///
/// # Errors
/// `InvalidArgumentError` for an unknown time zone, a malformed country code or a tax
/// percentage outside `[0, 100]`; nothing is changed then.
pub fn update_customer(customer: &Customer, fields: &CustomerFields) -> Result<Customer, Error> {
    let mut updated = customer.clone();
    if let Some(has) = fields.has_payment_method {
        updated.has_payment_method = has;
    }
    if let Some(zone) = &fields.timezone {
        updated.timezone = zone.parse::<Tz>().map_err(|_| {
            Error::new(
                ErrorCode::InvalidArgumentError,
                format!("`{zone}` is not an IANA time zone"),
            )
        })?;
    }
    if let Some(country) = &fields.billing_country_code {
        updated.country = Some(crate::id::check_country(country)?);
    }
    if let Some(pct) = fields.tax_percentage {
        crate::invoice::check_tax_percentage(pct)?;
        updated.tax_percentage = Some(pct);
    }
    if let Some(inclusive) = fields.tax_inclusive {
        updated.tax_inclusive = inclusive;
    }
    Ok(updated)
}

/// Decides a `provisionCustomer` request: creates the customer (or updates an existing one)
/// and provisions its first subscription per the journey start setup, or the requested one
/// for a customer already holding a subscription of the request's scope (module docs). An existing customer
/// who has a payment method then has its `PAYMENT_PENDING` subscriptions collected at `now`
/// first, as `updateCustomer` giving the payment method collects them
/// ([`crate::lifecycle::collect_pending_payments`]), so the subscription is decided on the
/// state with them paid for; a pending non-trial subscription of the request's scope that
/// the decision replaces is left uncharged instead, as a completed checkout leaves it.
///
/// # Errors
/// `CustomerIsArchived` for an archived customer, `BadUserInput` for
/// `subscriptionParams` that are not a provision input, `InvalidArgumentError` for
/// `subscriptionParams` naming another customer, the customer field errors of
/// [`update_customer`], every error of [`crate::lifecycle::collect_pending_payments`], and
/// every error of [`provision`].
pub fn provision_customer(
    catalog: &Catalog,
    existing: Option<&CustomerState>,
    request: &ProvisionCustomerRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<CustomerDecision, Error> {
    let mut state = match existing {
        Some(state) => {
            state.ensure_active()?;
            state.clone()
        }
        None => CustomerState::new(Customer::new(request.customer_id.clone())),
    };
    state.customer = update_customer(
        &state.customer,
        &CustomerFields {
            has_payment_method: request.has_payment_method,
            timezone: request.timezone.clone(),
            billing_country_code: request.billing_country_code.clone(),
            tax_percentage: request.tax_percentage,
            tax_inclusive: request.tax_inclusive,
        },
    )?;
    // A payment method pays for what waits for one (SPEC.md §5), as `updateCustomer`
    // giving it collects it, and before the subscription is decided, which then sees the
    // subscriptions paid for.
    let collects = state.customer.has_payment_method && state.has_pending_payments();
    let params = match &request.subscription_params {
        None | Some(serde_json::Value::Null) => {
            let (state, collected) = if collects {
                collect_pending_payments(catalog, &state, now, settings)?
            } else {
                (state, Vec::new())
            };
            return Ok(CustomerDecision {
                state,
                strategy: SubscriptionDecisionStrategy::SkippedSubscriptionCreation,
                subscription: None,
                collected,
            });
        }
        Some(params) => params,
    };
    let mut params = params.clone();
    match params.as_object_mut() {
        Some(map) => {
            map.entry("customerId")
                .or_insert_with(|| serde_json::Value::String(request.customer_id.to_string()));
        }
        None => {
            return Err(Error::new(
                ErrorCode::BadUserInput,
                "`subscriptionParams` is not an object",
            ));
        }
    }
    let requested: ProvisionRequest = serde_json::from_value(params)
        .map_err(|e| Error::new(ErrorCode::BadUserInput, format!("subscriptionParams: {e}")))?;
    // A request naming two customers is a mistake of its caller, not a choice to make here.
    if requested.customer_id != request.customer_id {
        return Err(Error::new(
            ErrorCode::InvalidArgumentError,
            format!(
                "`subscriptionParams.customerId` `{}` is not the customer `{}`",
                requested.customer_id, request.customer_id
            ),
        ));
    }
    let plan = catalog
        .plan_or_latest(requested.plan_id.as_str(), requested.plan_version)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PlanNotFound,
                format!("plan `{}` does not exist", requested.plan_id),
            )
        })?;
    let product = catalog.product(plan.product.as_str()).ok_or_else(|| {
        Error::new(
            ErrorCode::PlanNotFound,
            format!("product `{}` does not exist", plan.product),
        )
    })?;
    // The journey's start setup is how a customer starts the product (SPEC.md §2): one who
    // already holds a subscription of the request's scope, live or waiting, gets what it
    // asks for, as `provisionSubscription` would decide it, never the start plan in place
    // of what it has.
    let starting = !state.holds_scope(&product.id, requested.resource_id.as_ref());
    let (strategy, request) = match (&product.journey.start, starting) {
        (StartSetup::PlanSelection, _) | (_, false) => {
            (SubscriptionDecisionStrategy::RequestedPlan, requested)
        }
        (StartSetup::FreePlan(start), true) => (
            SubscriptionDecisionStrategy::PredefinedFreePlan,
            predefined(requested, start.clone(), None),
        ),
        (StartSetup::TrialPeriod(start), true) => {
            // The start plan's own trial (catalog validation makes sure it has one), under
            // the usual eligibility: a customer who had one gets the paid flow (SPEC.md §3.T).
            // The caller chose no plan, so it need not know the start plan's billing
            // periods: its only one is taken; with several the choice stays the caller's.
            let period = requested.billing_period.or_else(|| {
                let country = requested
                    .billing_country_code
                    .as_deref()
                    .and_then(CountryCode::parse)
                    .or(state.customer.country);
                catalog
                    .latest_plan(start.as_str())
                    .and_then(|plan| plan.only_billing_period(country))
            });
            (
                SubscriptionDecisionStrategy::PredefinedTrialPlan,
                predefined(requested, start.clone(), period),
            )
        }
    };
    let (state, decision, collected) = decide_collecting_payments(
        catalog,
        state,
        Some((&product.id, request.resource_id.as_ref())),
        now,
        settings,
        |paid| provision(catalog, paid, &request, redemptions, now, settings),
    )?;
    Ok(CustomerDecision {
        state,
        strategy,
        subscription: Some(decision),
        collected,
    })
}

fn predefined(
    requested: ProvisionRequest,
    plan: crate::id::PlanId,
    billing_period: Option<crate::period::BillingPeriod>,
) -> ProvisionRequest {
    ProvisionRequest {
        customer_id: requested.customer_id,
        plan_id: plan,
        plan_version: None,
        billing_period,
        resource_id: requested.resource_id,
        unit_quantity: None,
        billable_features: Vec::new(),
        addons: Vec::new(),
        promotion_code: None,
        coupon_id: None,
        billing_country_code: requested.billing_country_code,
        start_date: requested.start_date,
        skip_trial: false,
        trial_override: None,
        schedule_strategy: None,
        billing_cycle_anchor: None,
        proration_behavior: None,
        payment_collection_method: requested.payment_collection_method,
        checkout_options: requested.checkout_options,
        subscription_id: requested.subscription_id,
        metadata: requested.metadata,
        tax_percentage: requested.tax_percentage,
    }
}
