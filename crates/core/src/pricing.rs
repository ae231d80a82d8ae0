//! Prices: the recurring amount of a configuration, and the amount of a quantity under a
//! price's scheme.
//!
//! A configuration is a plan version, a billing period, a billing country, unit quantities
//! and add-ons with quantities. Its recurring amount is one component per price: the plan's
//! flat fees and per-unit prices for the billing period (from the country's price set, else
//! the default set) in catalog order, then each add-on's price × quantity in the
//! configuration's order. Usage-based prices are billed in arrears and are not part of it.
//! Component amounts are exact; rounding to the minor unit happens on invoice lines.

use crate::catalog::{Addon, Catalog, Plan, Price, PriceModel, PricingType, TiersMode, UnitScheme};
use crate::error::{Error, ErrorCode};
use crate::id::{AddonId, CountryCode, FeatureId, PlanId};
use crate::money::{self, Currency};
use crate::period::BillingPeriod;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An add-on on a configuration, pinned to a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddonQuantity {
    /// The add-on.
    pub addon: AddonId,
    /// Its version.
    pub version: u32,
    /// How many.
    pub quantity: u32,
}

/// What a subscription is made of, for pricing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Configuration {
    /// The plan.
    pub plan: PlanId,
    /// The plan version.
    pub plan_version: u32,
    /// The billing period; `None` only for a plan without prices.
    pub billing_period: Option<BillingPeriod>,
    /// The billing country, which picks a localized price set.
    pub country: Option<CountryCode>,
    /// Quantities bought of per-unit priced features. A feature left out gets its price's
    /// `minUnitQuantity`.
    #[serde(deserialize_with = "crate::stored::unique_map")]
    pub units: BTreeMap<FeatureId, u64>,
    /// Add-ons, in the order they were bought.
    pub addons: Vec<AddonQuantity>,
}

/// Where a component of a recurring amount comes from. Two components are the same
/// component only if they come from the same place (FORMAT.md §6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum ComponentSource {
    /// A plan's price.
    PlanPrice {
        /// The plan.
        plan: PlanId,
        /// Its version.
        version: u32,
        /// The price's position in its price set.
        index: usize,
    },
    /// An add-on's price.
    AddonPrice {
        /// The add-on.
        addon: AddonId,
        /// Its version.
        version: u32,
        /// The price's position in its price set.
        index: usize,
    },
}

/// One priced part of a configuration: one future invoice line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Where it comes from.
    pub source: ComponentSource,
    /// A description for the invoice line.
    pub description: Arc<str>,
    /// The quantity charged (1 for a flat fee; units for a per-unit price; the add-on's
    /// quantity for an add-on).
    pub quantity: u64,
    /// `amount / quantity`, exact (for a tiered price, the average unit price).
    pub unit_price: Decimal,
    /// The exact amount for a full period.
    pub amount: Decimal,
}

/// The recurring amount of a configuration for one full billing period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringAmount {
    /// The currency; `None` when nothing is priced (a free plan without paid add-ons).
    pub currency: Option<Currency>,
    /// The billing period the amount is for.
    pub billing_period: Option<BillingPeriod>,
    /// The components in invoice order.
    pub components: Vec<Component>,
    /// The sum of the components, exact.
    pub total: Decimal,
}

impl RecurringAmount {
    /// The amount per month (total ÷ months in the billing period), exact up to decimal
    /// precision; used to compare configurations billed over different periods.
    ///
    /// # Errors
    /// `AmountTooLarge` on overflow.
    pub fn monthly(&self) -> Result<Decimal, Error> {
        let months = self.billing_period.map_or(1, BillingPeriod::months);
        money::div(self.total, Decimal::from(months))
    }
}

/// The recurring amount of `config` under `catalog`.
///
/// # Errors
/// `PlanNotFound` / `AddonNotFound` for a plan or add-on version the catalog lacks,
/// `BillingPeriodMissingError` when the plan has prices but none for the billing period (or
/// none is given), `InvalidQuantity` for a unit quantity outside its price's bounds,
/// `CurrencyMismatch` when an add-on is priced in another currency than the plan,
/// `AmountTooLarge` on overflow.
pub fn recurring_amount(
    catalog: &Catalog,
    config: &Configuration,
) -> Result<RecurringAmount, Error> {
    let plan = catalog
        .plan(config.plan.as_str(), config.plan_version)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PlanNotFound,
                format!(
                    "plan `{}` version {} does not exist",
                    config.plan, config.plan_version
                ),
            )
        })?;
    plan_amount(catalog, plan, config)
}

/// [`recurring_amount`] of `config` on `plan`, its plan version, already looked up.
pub(crate) fn plan_amount(
    catalog: &Catalog,
    plan: &Plan,
    config: &Configuration,
) -> Result<RecurringAmount, Error> {
    let mut quote = RecurringAmount {
        currency: None,
        billing_period: config.billing_period,
        components: Vec::with_capacity(
            plan.prices.prices.len().saturating_add(config.addons.len()),
        ),
        total: Decimal::ZERO,
    };
    let plan_prices = plan_prices(plan, config)?;
    for (index, price) in plan_prices {
        let (quantity, amount, unit) = match &price.model {
            PriceModel::FlatFee { amount } => (1, *amount, *amount),
            PriceModel::PerUnit {
                feature,
                scheme,
                min_quantity,
                max_quantity,
            } => {
                let quantity = config.units.get(feature).copied().unwrap_or(*min_quantity);
                if quantity < *min_quantity || max_quantity.is_some_and(|max| quantity > max) {
                    return Err(Error::new(
                        ErrorCode::InvalidQuantity,
                        format!(
                            "quantity {quantity} of `{feature}` is outside {min_quantity}..={}",
                            max_quantity.map_or("∞".to_owned(), |m| m.to_string())
                        ),
                    ));
                }
                let amount = scheme_amount(scheme, quantity)?.amount;
                let unit = match scheme {
                    UnitScheme::PerUnit { unit_price } if quantity > 0 => *unit_price,
                    _ => unit_price(amount, quantity)?,
                };
                (quantity, amount, unit)
            }
            PriceModel::UsageBased { .. } => continue,
        };
        quote.push(
            price.currency,
            Component {
                source: ComponentSource::PlanPrice {
                    plan: plan.id.clone(),
                    version: plan.version,
                    index,
                },
                description: Arc::clone(&price.description),
                quantity,
                unit_price: unit,
                amount,
            },
        )?;
    }
    for line in &config.addons {
        let addon = catalog
            .addon(line.addon.as_str(), line.version)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::AddonNotFound,
                    format!(
                        "add-on `{}` version {} does not exist",
                        line.addon, line.version
                    ),
                )
            })?;
        for (index, price) in addon_prices(addon, config.billing_period)? {
            let PriceModel::FlatFee { amount: unit } = price.model else {
                continue;
            };
            let quantity = u64::from(line.quantity);
            quote.push(
                price.currency,
                Component {
                    source: ComponentSource::AddonPrice {
                        addon: addon.id.clone(),
                        version: addon.version,
                        index,
                    },
                    description: Arc::clone(&price.description),
                    quantity,
                    unit_price: unit,
                    amount: money::mul(unit, Decimal::from(quantity))?,
                },
            )?;
        }
    }
    Ok(quote)
}

impl RecurringAmount {
    fn push(&mut self, currency: Currency, component: Component) -> Result<(), Error> {
        match self.currency {
            Some(c) if c != currency => {
                return Err(Error::new(
                    ErrorCode::CurrencyMismatch,
                    format!(
                        "`{}` is priced in `{currency}`, the subscription in `{c}`",
                        component.description
                    ),
                ));
            }
            Some(_) => {}
            None => self.currency = Some(currency),
        }
        self.total = money::add(self.total, component.amount)?;
        self.components.push(component);
        Ok(())
    }
}

/// The plan's prices for the configuration's billing period, with their positions in their
/// set, from the country's set if it has one for the period.
fn plan_prices<'c>(
    plan: &'c Plan,
    config: &Configuration,
) -> Result<impl Iterator<Item = (usize, &'c Price)>, Error> {
    let has_prices = !plan.prices.is_empty() || !plan.localized_prices.is_empty();
    if plan.pricing_type == PricingType::Free || !has_prices {
        return Ok(in_period(&[], None));
    }
    let Some(period) = config.billing_period else {
        return Err(Error::new(
            ErrorCode::BillingPeriodMissingError,
            format!("plan `{}` needs a billing period", plan.id),
        ));
    };
    let set = plan.price_set(config.country, period);
    if !set.has_period(period) {
        return Err(Error::new(
            ErrorCode::BillingPeriodMissingError,
            format!("plan `{}` has no {} price", plan.id, period.as_str()),
        ));
    }
    Ok(in_period(&set.prices, Some(period)))
}

/// The prices of `prices` billed every `period`, with their positions.
fn in_period(
    prices: &[Price],
    period: Option<BillingPeriod>,
) -> impl Iterator<Item = (usize, &Price)> {
    prices
        .iter()
        .enumerate()
        .filter(move |(_, p)| Some(p.billing_period) == period)
}

/// An add-on's prices for the billing period (see [`sold_for`]).
fn addon_prices(
    addon: &Addon,
    period: Option<BillingPeriod>,
) -> Result<impl Iterator<Item = (usize, &Price)>, Error> {
    sold_for(addon, period)?;
    Ok(in_period(&addon.prices.prices, period))
}

/// Whether `addon` can be bought for `period`: an add-on without any price is free; one
/// priced for other periods only cannot be bought for this one.
///
/// # Errors
/// `BillingPeriodMissingError` for an add-on priced for other periods only.
pub(crate) fn sold_for(addon: &Addon, period: Option<BillingPeriod>) -> Result<(), Error> {
    let prices = &addon.prices.prices;
    if prices.is_empty() || prices.iter().any(|p| Some(p.billing_period) == period) {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::BillingPeriodMissingError,
        format!(
            "add-on `{}` has no {} price",
            addon.id,
            period.map_or("billing-period-less", BillingPeriod::as_str)
        ),
    ))
}

fn unit_price(amount: Decimal, quantity: u64) -> Result<Decimal, Error> {
    if quantity == 0 {
        Ok(Decimal::ZERO)
    } else {
        money::div(amount, Decimal::from(quantity))
    }
}

/// The amount of a quantity under a scheme, with the quantity as charged (blocks for a
/// package price, else units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemeAmount {
    /// The quantity charged: whole blocks for a package price, else units.
    pub charged_quantity: u64,
    /// The exact amount.
    pub amount: Decimal,
}

/// The amount of `quantity` units under `scheme`:
/// - per unit: `quantity × unitPrice`;
/// - package: `⌈quantity / blockSize⌉ × unitPrice`;
/// - graduated: each tier prices the units that fall in it, plus its flat fee if any unit
///   does;
/// - volume: the tier containing `quantity` prices every unit, plus its flat fee.
///
/// A quantity of 0 costs 0 under every scheme.
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn scheme_amount(scheme: &UnitScheme, quantity: u64) -> Result<SchemeAmount, Error> {
    let charged = |amount| SchemeAmount {
        charged_quantity: quantity,
        amount,
    };
    if quantity == 0 {
        return Ok(charged(Decimal::ZERO));
    }
    match scheme {
        UnitScheme::PerUnit { unit_price } => {
            Ok(charged(money::mul(*unit_price, Decimal::from(quantity))?))
        }
        UnitScheme::Package {
            block_size,
            unit_price,
        } => {
            let blocks = quantity.div_ceil((*block_size).max(1));
            Ok(SchemeAmount {
                charged_quantity: blocks,
                amount: money::mul(*unit_price, Decimal::from(blocks))?,
            })
        }
        UnitScheme::Tiered {
            mode: TiersMode::Graduated,
            tiers,
        } => {
            let mut total = Decimal::ZERO;
            let mut below = 0u64;
            for tier in tiers {
                if quantity <= below {
                    break;
                }
                let top = tier.up_to.map_or(quantity, |up| up.min(quantity));
                let units = top.saturating_sub(below);
                if units > 0 {
                    total = money::add(total, money::mul(tier.unit_price, Decimal::from(units))?)?;
                    if !tier.flat_price.is_zero() {
                        total = money::add(total, tier.flat_price)?;
                    }
                }
                below = top.max(below);
            }
            Ok(charged(total))
        }
        UnitScheme::Tiered {
            mode: TiersMode::Volume,
            tiers,
        } => {
            let tier = tiers
                .iter()
                .find(|t| t.up_to.is_none_or(|up| quantity <= up))
                .or_else(|| tiers.last());
            let amount = match tier {
                Some(t) => money::add(
                    money::mul(t.unit_price, Decimal::from(quantity))?,
                    t.flat_price,
                )?,
                None => Decimal::ZERO,
            };
            Ok(charged(amount))
        }
    }
}
