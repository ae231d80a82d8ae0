//! Loading a catalog from JSON and validating it.
//!
//! Parsing stops at the first JSON problem (a document that does not parse has no further
//! structure to check). Once parsed, every problem is collected, each with its code and the
//! JSON path of the value at fault. Every check looks at one entry and at hash indexes, so
//! validation is linear in the size of the catalog.

use super::entitlement_value::{Fields, Kind, entitlement_value};
use super::raw::{
    AmountText, RawAddon, RawCatalog, RawCoupon, RawCouponDuration, RawCouponType, RawEndSetup,
    RawEntitlement, RawFeature, RawFeatureType, RawPlan, RawPrice, RawPriceModel, RawProduct,
    RawStartSetup, RawTier,
};
use super::{
    Addon, AddonBehavior, Catalog, Coupon, CouponDuration, Discount, EndSetup, Entitlement,
    Feature, FeatureKind, Journey, Plan, Price, PriceModel, PriceSet, PricingType, Product,
    PromotionCode, StartSetup, Tier, TrialPolicy, UnitScheme,
};
use crate::error::ErrorCode;
use crate::id::{AddonId, CouponId, CustomerId, FeatureId, PlanId, ProductId};
use crate::money::{AmountParseError, Currency, parse_amount};
use crate::period::{BillingPeriod, TrialDuration};
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One problem found in a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// What kind of problem (FORMAT.md §4).
    pub code: ErrorCode,
    /// Where: a JSON path like `plans[3].prices[0].currency` (`$` is the whole document).
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.code, self.path, self.message)
    }
}

/// A catalog that did not load: every problem found, in catalog order (by section:
/// features, products, plans, add-ons, coupons; then by entry; within an entry, in the order
/// the checks run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CatalogError {
    problems: Vec<Problem>,
}

impl CatalogError {
    /// The problems, at least one.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for CatalogError {
    /// One problem per line, as `tollgate check` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for problem in &self.problems {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl Catalog {
    /// Parses and validates a catalog written as FORMAT.md §1 JSON.
    ///
    /// # Errors
    /// A [`CatalogError`] listing every problem: the first JSON problem if the bytes do not
    /// parse (not UTF-8, not JSON, wrong type, unknown or duplicate key, unknown enum value),
    /// else every validation problem.
    ///
    /// # Example
    /// ```
    /// use tollgate_core::{Catalog, ErrorCode};
    ///
    /// let err = Catalog::from_json(br#"{"plans": [{"id": "p", "productId": "x", "pricingType": "FREE"}]}"#)
    ///     .unwrap_err();
    /// assert_eq!(err.problems()[0].code, ErrorCode::UnknownReference);
    /// assert_eq!(err.problems()[0].path, "plans[0].productId");
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, CatalogError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            single(
                ErrorCode::BadUserInput,
                "$",
                format!("the catalog is not UTF-8: {e}"),
            )
        })?;
        // The fast path parses without tracking paths; only a document that fails is parsed
        // again to say where.
        let raw: RawCatalog = match serde_json::from_str(text) {
            Ok(raw) => raw,
            Err(_) => {
                let mut deserializer = serde_json::Deserializer::from_str(text);
                let raw: RawCatalog = serde_path_to_error::deserialize(&mut deserializer)
                    .map_err(|e| parse_problem(e.path(), e.inner()))?;
                deserializer
                    .end()
                    .map_err(|e| single(ErrorCode::BadUserInput, "$", e.to_string()))?;
                raw
            }
        };
        Self::from_raw(&raw)
    }

    /// Validates a catalog already parsed as a JSON value (one built in code). Parsing text
    /// into a `Value` keeps the last of duplicate keys, so text is better read by
    /// [`Catalog::from_json`], which refuses them.
    ///
    /// # Errors
    /// As [`Catalog::from_json`], but for duplicate keys, which a `Value` cannot hold.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Self, CatalogError> {
        let raw: RawCatalog = serde_path_to_error::deserialize(value)
            .map_err(|e| parse_problem(e.path(), e.inner()))?;
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &RawCatalog) -> Result<Self, CatalogError> {
        let mut loader = Loader::new(raw);
        let catalog = loader.load();
        if loader.problems.is_empty() {
            Ok(catalog)
        } else {
            // Checks that span entries (duplicates, cycles) run before or after the
            // per-entry checks; a stable sort puts every problem back with its entry.
            let mut problems = loader.problems;
            problems.sort_by_key(|(entry, _)| *entry);
            Err(CatalogError {
                problems: problems.into_iter().map(|(_, p)| p).collect(),
            })
        }
    }
}

fn single(code: ErrorCode, path: &str, message: String) -> CatalogError {
    CatalogError {
        problems: vec![Problem {
            code,
            path: path.to_owned(),
            message,
        }],
    }
}

/// A JSON problem at `path`, written like validation paths: `$` for the whole document, and
/// segments serde could not name (a key cut off mid-string) left out rather than shown as `?`.
fn parse_problem(path: &serde_path_to_error::Path, error: &serde_json::Error) -> CatalogError {
    use serde_path_to_error::Segment;
    let mut rendered = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                rendered.push('[');
                rendered.push_str(&index.to_string());
                rendered.push(']');
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !rendered.is_empty() {
                    rendered.push('.');
                }
                rendered.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    if rendered.is_empty() {
        rendered.push('$');
    }
    single(ErrorCode::BadUserInput, &rendered, error.to_string())
}

/// A JSON path built lazily: nothing is formatted unless a problem is reported.
#[derive(Clone, Copy)]
struct At<'a> {
    parent: Option<&'a At<'a>>,
    name: &'a str,
    index: Option<usize>,
}

impl<'a> At<'a> {
    fn item(name: &'a str, index: usize) -> Self {
        Self {
            parent: None,
            name,
            index: Some(index),
        }
    }

    fn field(&'a self, name: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            name,
            index: None,
        }
    }

    fn index(&'a self, name: &'a str, index: usize) -> At<'a> {
        At {
            parent: Some(self),
            name,
            index: Some(index),
        }
    }

    /// The top-level entry the path is in: its section's rank and its index.
    fn entry(&self) -> (usize, usize) {
        let mut root = self;
        while let Some(parent) = root.parent {
            root = parent;
        }
        let section = SECTIONS
            .iter()
            .position(|s| *s == root.name)
            .unwrap_or(SECTIONS.len());
        (section, root.index.unwrap_or(0))
    }

    fn render(&self) -> String {
        let mut out = match self.parent {
            Some(parent) => {
                let mut p = parent.render();
                p.push('.');
                p
            }
            None => String::new(),
        };
        out.push_str(self.name);
        if let Some(i) = self.index {
            out.push('[');
            out.push_str(&i.to_string());
            out.push(']');
        }
        out
    }
}

/// The catalog's sections, in the order problems are listed.
const SECTIONS: [&str; 5] = ["features", "products", "plans", "addons", "coupons"];

/// Whose price a price is: add-ons are sold per unit of quantity, so they take flat fees only.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Plan,
    Addon,
}

struct Loader<'r> {
    raw: &'r RawCatalog,
    /// Each problem with the entry it belongs to (see [`At::entry`]).
    problems: Vec<((usize, usize), Problem)>,
    features: FxHashMap<&'r str, usize>,
    products: FxHashMap<&'r str, usize>,
    /// Latest version's position of each plan id.
    latest_plans: FxHashMap<&'r str, usize>,
    latest_addons: FxHashMap<&'r str, usize>,
}

impl<'r> Loader<'r> {
    fn new(raw: &'r RawCatalog) -> Self {
        Self {
            raw,
            problems: Vec::new(),
            features: FxHashMap::default(),
            products: FxHashMap::default(),
            latest_plans: FxHashMap::default(),
            latest_addons: FxHashMap::default(),
        }
    }

    fn report(&mut self, code: ErrorCode, at: &At<'_>, message: impl Into<String>) {
        self.problems.push((
            at.entry(),
            Problem {
                code,
                path: at.render(),
                message: message.into(),
            },
        ));
    }

    fn load(&mut self) -> Catalog {
        let raw = self.raw;
        let mut catalog = Catalog::default();
        self.index_features();
        self.index_products();
        catalog.plan_versions = self
            .index_versions(
                raw.plans
                    .iter()
                    .map(|p| (p.id.as_str(), p.version, p.product_id.as_str())),
                "plans",
                true,
            )
            .into_iter()
            .map(|(id, positions)| (PlanId::new(id), positions))
            .collect();
        catalog.addon_versions = self
            .index_versions(
                raw.addons
                    .iter()
                    .map(|a| (a.id.as_str(), a.version, a.product_id.as_str())),
                "addons",
                false,
            )
            .into_iter()
            .map(|(id, positions)| (AddonId::new(id), positions))
            .collect();

        for (i, feature) in raw.features.iter().enumerate() {
            if let Some(f) = self.feature(feature, &At::item("features", i)) {
                catalog
                    .feature_index
                    .entry(f.id.clone())
                    .or_insert(catalog.features.len());
                catalog.features.push(f);
            }
        }
        for (i, product) in raw.products.iter().enumerate() {
            if let Some(p) = self.product(product, &At::item("products", i)) {
                catalog
                    .product_index
                    .entry(p.id.clone())
                    .or_insert(catalog.products.len());
                catalog.products.push(p);
            }
        }
        for (i, plan) in raw.plans.iter().enumerate() {
            catalog.plans.push(self.plan(plan, &At::item("plans", i)));
        }
        for (i, addon) in raw.addons.iter().enumerate() {
            catalog
                .addons
                .push(self.addon(addon, &At::item("addons", i)));
        }
        self.check_plan_cycles();
        self.check_addon_cycles();
        let mut codes: FxHashMap<&'r str, usize> = FxHashMap::default();
        for (i, coupon) in raw.coupons.iter().enumerate() {
            let at = At::item("coupons", i);
            if catalog.coupon_index.contains_key(coupon.id.as_str()) {
                self.report(
                    ErrorCode::DuplicateId,
                    &at.field("id"),
                    format!("coupon `{}` is declared more than once", coupon.id),
                );
            }
            let position = catalog.coupons.len();
            catalog
                .coupon_index
                .entry(CouponId::new(coupon.id.as_str()))
                .or_insert(position);
            for (j, code) in coupon.promotion_codes.iter().enumerate() {
                if codes.insert(code.code.as_str(), i).is_some() {
                    self.report(
                        ErrorCode::DuplicateId,
                        &at.index("promotionCodes", j).field("code"),
                        format!("promotion code `{}` is declared more than once", code.code),
                    );
                } else {
                    catalog
                        .promotion_index
                        .insert(code.code.clone(), (position, j));
                }
            }
            catalog.coupons.push(self.coupon(coupon, &at));
        }
        catalog
    }

    fn index_features(&mut self) {
        for (i, feature) in self.raw.features.iter().enumerate() {
            if self.features.insert(feature.id.as_str(), i).is_some() {
                self.report(
                    ErrorCode::DuplicateId,
                    &At::item("features", i).field("id"),
                    format!("feature `{}` is declared more than once", feature.id),
                );
            }
        }
    }

    fn index_products(&mut self) {
        for (i, product) in self.raw.products.iter().enumerate() {
            if self.products.insert(product.id.as_str(), i).is_some() {
                self.report(
                    ErrorCode::DuplicateId,
                    &At::item("products", i).field("id"),
                    format!("product `{}` is declared more than once", product.id),
                );
            }
        }
    }

    /// Indexes versions of plans or add-ons by id, reporting an id and version declared
    /// twice or versions of one id in different products (a migration to the latest
    /// version would move a subscription to another product), and records each id's
    /// latest version.
    fn index_versions<I>(
        &mut self,
        entries: I,
        section: &'static str,
        plans: bool,
    ) -> FxHashMap<String, Vec<usize>>
    where
        I: Iterator<Item = (&'r str, u32, &'r str)>,
    {
        let mut versions: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut seen: FxHashSet<(&'r str, u32)> = FxHashSet::default();
        let mut latest: FxHashMap<&'r str, (u32, usize)> = FxHashMap::default();
        // The product of each id's first version in catalog order.
        let mut products: FxHashMap<&'r str, (u32, &'r str)> = FxHashMap::default();
        for (i, (id, version, product)) in entries.enumerate() {
            if !seen.insert((id, version)) {
                self.report(
                    ErrorCode::DuplicateId,
                    &At::item(section, i).field("version"),
                    format!("`{id}` version {version} is declared more than once"),
                );
                continue;
            }
            let (first_version, first_product) = *products.entry(id).or_insert((version, product));
            if product != first_product {
                let (code, kind) = if plans {
                    (ErrorCode::InvalidPlan, "plan")
                } else {
                    (ErrorCode::InvalidAddon, "add-on")
                };
                self.report(
                    code,
                    &At::item(section, i).field("productId"),
                    format!(
                        "{kind} `{id}` version {version} belongs to product `{product}`, \
                         version {first_version} to `{first_product}`"
                    ),
                );
            }
            versions.entry(id.to_owned()).or_default().push(i);
            let entry = latest.entry(id).or_insert((version, i));
            if version > entry.0 {
                *entry = (version, i);
            }
        }
        let raw = self.raw;
        for positions in versions.values_mut() {
            if plans {
                positions.sort_by_key(|&i| raw.plans.get(i).map_or(0, |p| p.version));
            } else {
                positions.sort_by_key(|&i| raw.addons.get(i).map_or(0, |a| a.version));
            }
        }
        let latest = latest.into_iter().map(|(id, (_, i))| (id, i)).collect();
        if plans {
            self.latest_plans = latest;
        } else {
            self.latest_addons = latest;
        }
        versions
    }

    fn latest_plan(&self, id: &str) -> Option<&'r RawPlan> {
        let raw = self.raw;
        self.latest_plans.get(id).and_then(|&i| raw.plans.get(i))
    }

    fn latest_addon(&self, id: &str) -> Option<&'r RawAddon> {
        let raw = self.raw;
        self.latest_addons.get(id).and_then(|&i| raw.addons.get(i))
    }

    fn raw_feature(&self, id: &str) -> Option<&'r RawFeature> {
        let raw = self.raw;
        self.features.get(id).and_then(|&i| raw.features.get(i))
    }

    fn feature(&mut self, raw: &'r RawFeature, at: &At<'_>) -> Option<Feature> {
        let mut ok = true;
        if raw.meter.is_some() && raw.kind != RawFeatureType::Number {
            self.report(
                ErrorCode::InvalidFeature,
                &at.field("meter"),
                "only NUMBER features have a meter",
            );
            ok = false;
        }
        let kind = match raw.kind {
            RawFeatureType::Boolean | RawFeatureType::Number if raw.values.is_some() => {
                self.report(
                    ErrorCode::InvalidFeature,
                    &at.field("values"),
                    "only ENUM features declare values",
                );
                return None;
            }
            RawFeatureType::Boolean => FeatureKind::Boolean,
            RawFeatureType::Number => FeatureKind::Number { meter: raw.meter },
            RawFeatureType::Enum => {
                let values = raw.values.clone().unwrap_or_default();
                if values.is_empty() {
                    self.report(
                        ErrorCode::InvalidFeature,
                        &at.field("values"),
                        format!("enum feature `{}` declares no values", raw.id),
                    );
                    return None;
                }
                let mut seen = FxHashSet::default();
                for (j, value) in values.iter().enumerate() {
                    if !seen.insert(value.as_str()) {
                        self.report(
                            ErrorCode::InvalidFeature,
                            &at.index("values", j),
                            format!("value `{value}` is declared more than once"),
                        );
                        ok = false;
                    }
                }
                FeatureKind::Enum { values }
            }
        };
        ok.then(|| Feature {
            id: FeatureId::new(raw.id.as_str()),
            name: raw.name.clone(),
            description: raw.description.clone(),
            unit: raw.unit.clone(),
            kind,
        })
    }

    fn product(&mut self, raw: &'r RawProduct, at: &At<'_>) -> Option<Product> {
        let journey_at = at.field("journey");
        let journey = &raw.journey;
        let start = match journey.start_setup {
            RawStartSetup::PlanSelection => {
                if journey.start_plan_id.is_some() {
                    self.report(
                        ErrorCode::InvalidJourney,
                        &journey_at.field("startPlanId"),
                        "a start plan is used only with FREE_PLAN or TRIAL_PERIOD",
                    );
                }
                Some(StartSetup::PlanSelection)
            }
            RawStartSetup::FreePlan => self
                .journey_plan(
                    raw,
                    journey.start_plan_id.as_deref(),
                    &journey_at,
                    "startPlanId",
                    JourneyNeed::Free,
                )
                .map(StartSetup::FreePlan),
            RawStartSetup::TrialPeriod => self
                .journey_plan(
                    raw,
                    journey.start_plan_id.as_deref(),
                    &journey_at,
                    "startPlanId",
                    JourneyNeed::Trial,
                )
                .map(StartSetup::TrialPeriod),
        };
        let end = match journey.end_setup {
            RawEndSetup::CancelSubscription => {
                if journey.downgrade_plan_id.is_some() {
                    self.report(
                        ErrorCode::InvalidJourney,
                        &journey_at.field("downgradePlanId"),
                        "a downgrade plan is used only with DOWNGRADE_TO_FREE",
                    );
                }
                Some(EndSetup::CancelSubscription)
            }
            RawEndSetup::DowngradeToFree => self
                .journey_plan(
                    raw,
                    journey.downgrade_plan_id.as_deref(),
                    &journey_at,
                    "downgradePlanId",
                    JourneyNeed::Free,
                )
                .map(EndSetup::DowngradeToFree),
        };
        Some(Product {
            id: ProductId::new(raw.id.as_str()),
            name: raw.name.clone(),
            description: raw.description.clone(),
            multiple_subscriptions: raw.multiple_subscriptions,
            journey: Journey {
                start: start?,
                end: end?,
                downgrade_strategy: journey.downgrade_strategy,
                cancellation_time: journey.cancellation_time,
                trial_conversion: journey.trial_conversion,
                usage_reset_on_change: journey.usage_reset_on_change,
            },
        })
    }

    fn journey_plan(
        &mut self,
        product: &RawProduct,
        plan_id: Option<&str>,
        journey_at: &At<'_>,
        key: &str,
        need: JourneyNeed,
    ) -> Option<PlanId> {
        let at = journey_at.field(key);
        let Some(plan_id) = plan_id else {
            self.report(
                ErrorCode::InvalidJourney,
                &at,
                format!("`{key}` is required by this setup"),
            );
            return None;
        };
        let Some(plan) = self.latest_plan(plan_id) else {
            self.report(
                ErrorCode::UnknownReference,
                &at,
                format!("plan `{plan_id}` does not exist"),
            );
            return None;
        };
        if plan.product_id != product.id {
            self.report(
                ErrorCode::InvalidJourney,
                &at,
                format!("plan `{plan_id}` belongs to product `{}`", plan.product_id),
            );
            return None;
        }
        match need {
            JourneyNeed::Free if plan.pricing_type != PricingType::Free => {
                self.report(
                    ErrorCode::InvalidJourney,
                    &at,
                    format!("plan `{plan_id}` is not free"),
                );
                None
            }
            JourneyNeed::Trial if plan.default_trial.is_none() => {
                self.report(
                    ErrorCode::InvalidJourney,
                    &at,
                    format!("plan `{plan_id}` has no default trial"),
                );
                None
            }
            _ => Some(PlanId::new(plan_id)),
        }
    }

    fn plan(&mut self, raw: &'r RawPlan, at: &At<'_>) -> Plan {
        if !self.products.contains_key(raw.product_id.as_str()) {
            self.report(
                ErrorCode::UnknownReference,
                &at.field("productId"),
                format!("product `{}` does not exist", raw.product_id),
            );
        }
        if let Some(parent_id) = &raw.parent_plan_id {
            match self.latest_plan(parent_id) {
                None => self.report(
                    ErrorCode::UnknownReference,
                    &at.field("parentPlanId"),
                    format!("plan `{parent_id}` does not exist"),
                ),
                Some(parent) if parent.product_id != raw.product_id => self.report(
                    ErrorCode::InvalidPlan,
                    &at.field("parentPlanId"),
                    format!(
                        "parent plan `{parent_id}` belongs to product `{}`",
                        parent.product_id
                    ),
                ),
                Some(_) => {}
            }
        }
        let label = raw.name.as_deref().unwrap_or(raw.id.as_str());
        let prices = self.price_set(&raw.prices, &at.field("prices"), Owner::Plan, label);
        let mut localized_prices = BTreeMap::new();
        let localized_at = at.field("localizedPrices");
        for (country, prices) in &raw.localized_prices.0 {
            let country_at = localized_at.field(country);
            let set = self.price_set(prices, &country_at, Owner::Plan, label);
            match crate::id::check_country(country) {
                Ok(code) => {
                    localized_prices.insert(code, set);
                }
                Err(e) => self.report(ErrorCode::BadUserInput, &country_at, e.message()),
            }
        }
        let localized = raw.localized_prices.0.iter().any(|(_, p)| !p.is_empty());
        match raw.pricing_type {
            PricingType::Free if !raw.prices.is_empty() || localized => self.report(
                ErrorCode::InvalidPrice,
                &at.field(if raw.prices.is_empty() {
                    "localizedPrices"
                } else {
                    "prices"
                }),
                format!("free plan `{}` has prices", raw.id),
            ),
            PricingType::Paid if raw.prices.is_empty() => self.report(
                ErrorCode::InvalidPrice,
                &at.field("prices"),
                format!("paid plan `{}` has no price", raw.id),
            ),
            _ => {}
        }
        let default_trial = raw.default_trial.as_ref().and_then(|trial| {
            let trial_at = at.field("defaultTrial");
            if raw.pricing_type == PricingType::Free {
                self.report(
                    ErrorCode::InvalidTrial,
                    &trial_at,
                    format!("free plan `{}` cannot have a trial", raw.id),
                );
                return None;
            }
            let count = match u32::try_from(trial.duration) {
                Ok(count) if count >= 1 => count,
                _ => {
                    self.report(
                        ErrorCode::InvalidTrial,
                        &trial_at.field("duration"),
                        format!(
                            "trial duration {} is not between 1 and {}",
                            trial.duration,
                            u32::MAX
                        ),
                    );
                    return None;
                }
            };
            Some(TrialPolicy {
                duration: TrialDuration {
                    count,
                    unit: trial.unit,
                },
                end_behavior: trial.end_behavior,
                requires_payment_method: trial.requires_payment_method,
            })
        });
        let mut compatible_addons = Vec::with_capacity(raw.compatible_addon_ids.len());
        // Repeats are found by a set: validation stays linear in the list's length.
        let mut listed: FxHashSet<&str> = FxHashSet::default();
        for (j, addon_id) in raw.compatible_addon_ids.iter().enumerate() {
            let addon_at = at.index("compatibleAddonIds", j);
            match self.latest_addon(addon_id) {
                None => self.report(
                    ErrorCode::UnknownReference,
                    &addon_at,
                    format!("add-on `{addon_id}` does not exist"),
                ),
                Some(addon) if addon.product_id != raw.product_id => self.report(
                    ErrorCode::InvalidAddon,
                    &addon_at,
                    format!(
                        "add-on `{addon_id}` belongs to product `{}`, plan `{}` to `{}`",
                        addon.product_id, raw.id, raw.product_id
                    ),
                ),
                Some(_) => {
                    if listed.insert(addon_id.as_str()) {
                        compatible_addons.push(AddonId::new(addon_id.as_str()));
                    } else {
                        self.report(
                            ErrorCode::InvalidAddon,
                            &addon_at,
                            format!("add-on `{addon_id}` is listed more than once"),
                        );
                    }
                }
            }
        }
        let entitlements = self.entitlements(&raw.entitlements, at, Owner::Plan);
        let id = PlanId::new(raw.id.as_str());
        Plan {
            credit_description: super::plan_credit_description(&id),
            id,
            version: raw.version,
            name: raw.name.clone(),
            description: raw.description.clone(),
            product: ProductId::new(raw.product_id.as_str()),
            pricing_type: raw.pricing_type,
            parent: raw.parent_plan_id.as_deref().map(PlanId::new),
            prices,
            localized_prices,
            default_trial,
            compatible_addons,
            entitlements,
        }
    }

    fn addon(&mut self, raw: &'r RawAddon, at: &At<'_>) -> Addon {
        if !self.products.contains_key(raw.product_id.as_str()) {
            self.report(
                ErrorCode::UnknownReference,
                &at.field("productId"),
                format!("product `{}` does not exist", raw.product_id),
            );
        }
        let max_quantity = match raw.max_quantity.map(u32::try_from) {
            None => 1,
            Some(Ok(q)) if q >= 1 => q,
            Some(_) => {
                self.report(
                    ErrorCode::InvalidAddon,
                    &at.field("maxQuantity"),
                    format!(
                        "maxQuantity {} is not between 1 and {}",
                        raw.max_quantity.unwrap_or(0),
                        u32::MAX
                    ),
                );
                1
            }
        };
        let mut dependencies = Vec::with_capacity(raw.dependencies.len());
        for (j, dependency) in raw.dependencies.iter().enumerate() {
            let dep_at = at.index("dependencies", j);
            match self.latest_addon(dependency) {
                None => self.report(
                    ErrorCode::UnknownReference,
                    &dep_at,
                    format!("add-on `{dependency}` does not exist"),
                ),
                Some(dep) if dep.product_id != raw.product_id => self.report(
                    ErrorCode::InvalidAddon,
                    &dep_at,
                    format!(
                        "dependency `{dependency}` belongs to product `{}`",
                        dep.product_id
                    ),
                ),
                Some(_) => dependencies.push(AddonId::new(dependency.as_str())),
            }
        }
        let label = raw.name.as_deref().unwrap_or(raw.id.as_str());
        let prices = self.price_set(&raw.prices, &at.field("prices"), Owner::Addon, label);
        let entitlements = self.entitlements(&raw.entitlements, at, Owner::Addon);
        let id = AddonId::new(raw.id.as_str());
        Addon {
            credit_description: super::addon_credit_description(&id),
            id,
            version: raw.version,
            name: raw.name.clone(),
            description: raw.description.clone(),
            product: ProductId::new(raw.product_id.as_str()),
            max_quantity,
            dependencies,
            prices,
            entitlements,
        }
    }

    /// The prices of a set; `label` (the owner's name, else its id) begins each price's
    /// invoice line description.
    fn price_set(
        &mut self,
        raw: &'r [RawPrice],
        set_at: &At<'_>,
        owner: Owner,
        label: &str,
    ) -> PriceSet {
        let flat: Arc<str> = Arc::from(label);
        let mut prices: Vec<Price> = Vec::with_capacity(raw.len());
        // The per-unit and usage prices seen, by billing period and feature (whether it was
        // per-unit): a map keeps the check for a second one linear.
        let mut by_feature: FxHashMap<(BillingPeriod, FeatureId), bool> = FxHashMap::default();
        let mut set_currency: Option<Currency> = None;
        for (j, raw_price) in raw.iter().enumerate() {
            let at = At {
                parent: set_at.parent,
                name: set_at.name,
                index: Some(j),
            };
            // The currency is checked on its own so that a mismatch is reported even when
            // the rest of the price has problems.
            let currency = Currency::parse(&raw_price.currency);
            let mut same_currency = true;
            match (currency, set_currency) {
                (None, _) => self.report(
                    ErrorCode::UnknownCurrency,
                    &at.field("currency"),
                    format!("`{}` is not an ISO 4217 currency code", raw_price.currency),
                ),
                (Some(currency), Some(expected)) if currency != expected => {
                    self.report(
                        ErrorCode::CurrencyMismatch,
                        &at.field("currency"),
                        format!("`{currency}` in a price set of `{expected}`"),
                    );
                    same_currency = false;
                }
                (Some(_), Some(_)) => {}
                (Some(currency), None) => set_currency = Some(currency),
            }
            let model = self.price_model(raw_price, &at, owner);
            let (Some(currency), Some(model), true) = (currency, model, same_currency) else {
                continue;
            };
            let description = match &model {
                PriceModel::FlatFee { .. } => Arc::clone(&flat),
                PriceModel::PerUnit { feature, .. } => Arc::from(format!("{label} ({feature})")),
                PriceModel::UsageBased { feature, .. } => {
                    Arc::from(format!("{label} ({feature} usage)"))
                }
            };
            let price = Price {
                billing_period: raw_price.billing_period,
                currency,
                model,
                description,
            };
            // One feature's quantity or usage is priced once per billing period: a second
            // usage price would bill the same usage again, and a usage price beside a
            // per-unit one would bill reported usage on top of the quantity bought.
            let (feature, per_unit) = match &price.model {
                PriceModel::PerUnit { feature, .. } => (Some(feature), true),
                PriceModel::UsageBased { feature, .. } => (Some(feature), false),
                PriceModel::FlatFee { .. } => (None, false),
            };
            if let Some(feature) = feature {
                let key = (price.billing_period, feature.clone());
                if let Some(&earlier) = by_feature.get(&key) {
                    let what = match (earlier, per_unit) {
                        (true, true) => "two per-unit prices",
                        (false, false) => "two usage prices",
                        (true, false) | (false, true) => "a per-unit and a usage price",
                    };
                    self.report(
                        ErrorCode::InvalidPrice,
                        &at.field("featureId"),
                        format!(
                            "{what} of `{feature}` for {}",
                            price.billing_period.as_str()
                        ),
                    );
                    continue;
                }
                by_feature.insert(key, per_unit);
            }
            prices.push(price);
        }
        PriceSet { prices }
    }

    fn price_model(&mut self, raw: &'r RawPrice, at: &At<'_>, owner: Owner) -> Option<PriceModel> {
        match raw.model {
            RawPriceModel::FlatFee => self.flat_fee(raw, at),
            RawPriceModel::PerUnit | RawPriceModel::UsageBased if owner == Owner::Addon => {
                self.report(
                    ErrorCode::InvalidPrice,
                    &at.field("model"),
                    "add-on prices are flat fees, charged per unit of the add-on's quantity",
                );
                None
            }
            RawPriceModel::PerUnit => self.unit_price(raw, at, true),
            RawPriceModel::UsageBased => self.unit_price(raw, at, false),
        }
    }

    fn flat_fee(&mut self, raw: &'r RawPrice, at: &At<'_>) -> Option<PriceModel> {
        let extras = [
            ("featureId", raw.feature_id.is_some()),
            ("unitPrice", raw.unit_price.is_some()),
            ("tiers", raw.tiers.is_some()),
            ("tiersMode", raw.tiers_mode.is_some()),
            ("blockSize", raw.block_size.is_some()),
            ("minUnitQuantity", raw.min_unit_quantity.is_some()),
            ("maxUnitQuantity", raw.max_unit_quantity.is_some()),
        ];
        let mut ok = true;
        for (key, present) in extras {
            if present {
                self.report(
                    ErrorCode::InvalidPrice,
                    &at.field(key),
                    format!("`{key}` does not apply to a FLAT_FEE price"),
                );
                ok = false;
            }
        }
        let Some(amount) = &raw.amount else {
            self.report(
                ErrorCode::InvalidPrice,
                &at.field("amount"),
                "a FLAT_FEE price needs an amount",
            );
            return None;
        };
        let amount = self.amount(amount, &at.field("amount"), ErrorCode::InvalidPrice);
        if ok {
            amount.map(|amount| PriceModel::FlatFee { amount })
        } else {
            None
        }
    }

    fn unit_price(&mut self, raw: &'r RawPrice, at: &At<'_>, per_unit: bool) -> Option<PriceModel> {
        let model_name = if per_unit { "PER_UNIT" } else { "USAGE_BASED" };
        let mut ok = true;
        if raw.amount.is_some() {
            self.report(
                ErrorCode::InvalidPrice,
                &at.field("amount"),
                format!("`amount` does not apply to a {model_name} price; use `unitPrice`, `tiers` or `blockSize`"),
            );
            ok = false;
        }
        let feature = match &raw.feature_id {
            None => {
                self.report(
                    ErrorCode::InvalidPrice,
                    &at.field("featureId"),
                    format!("a {model_name} price needs a `featureId`"),
                );
                None
            }
            Some(id) => match self.raw_feature(id) {
                None => {
                    self.report(
                        ErrorCode::UnknownReference,
                        &at.field("featureId"),
                        format!("feature `{id}` does not exist"),
                    );
                    None
                }
                Some(f) if f.kind != RawFeatureType::Number => {
                    self.report(
                        ErrorCode::InvalidPrice,
                        &at.field("featureId"),
                        format!("feature `{id}` is not a NUMBER feature and cannot be priced by quantity"),
                    );
                    None
                }
                Some(f) if !per_unit && f.meter.is_none() => {
                    self.report(
                        ErrorCode::InvalidPrice,
                        &at.field("featureId"),
                        format!("feature `{id}` has no meter, so no usage is reported to bill"),
                    );
                    None
                }
                Some(_) => Some(FeatureId::new(id.as_str())),
            },
        };
        let scheme = self.scheme(raw, at);
        if per_unit {
            let (min, max) = self.bounds(raw, at);
            Some(PriceModel::PerUnit {
                feature: feature?,
                scheme: scheme?,
                min_quantity: min?,
                max_quantity: max?,
            })
            .filter(|_| ok)
        } else {
            for (key, present) in [
                ("minUnitQuantity", raw.min_unit_quantity.is_some()),
                ("maxUnitQuantity", raw.max_unit_quantity.is_some()),
            ] {
                if present {
                    self.report(
                        ErrorCode::InvalidPrice,
                        &at.field(key),
                        format!("`{key}` does not apply to a USAGE_BASED price"),
                    );
                    ok = false;
                }
            }
            Some(PriceModel::UsageBased {
                feature: feature?,
                scheme: scheme?,
            })
            .filter(|_| ok)
        }
    }

    fn bounds(&mut self, raw: &RawPrice, at: &At<'_>) -> (Option<u64>, Option<Option<u64>>) {
        let bound = |this: &mut Self, key: &str, value: Option<i64>| -> Option<Option<u64>> {
            match value.map(u64::try_from) {
                None => Some(None),
                Some(Ok(v)) => Some(Some(v)),
                Some(Err(_)) => {
                    this.report(
                        ErrorCode::InvalidQuantityBounds,
                        &at.field(key),
                        format!("`{key}` is below 0"),
                    );
                    None
                }
            }
        };
        let min = bound(self, "minUnitQuantity", raw.min_unit_quantity).map(|m| m.unwrap_or(1));
        let max = bound(self, "maxUnitQuantity", raw.max_unit_quantity);
        if let (Some(min), Some(Some(max))) = (min, max) {
            if min > max {
                self.report(
                    ErrorCode::InvalidQuantityBounds,
                    &at.field("minUnitQuantity"),
                    format!("minUnitQuantity {min} is above maxUnitQuantity {max}"),
                );
                return (None, None);
            }
        }
        (min, max)
    }

    fn scheme(&mut self, raw: &'r RawPrice, at: &At<'_>) -> Option<UnitScheme> {
        if let Some(tiers) = &raw.tiers {
            let mut ok = true;
            for (key, present) in [
                ("unitPrice", raw.unit_price.is_some()),
                ("blockSize", raw.block_size.is_some()),
            ] {
                if present {
                    self.report(
                        ErrorCode::InvalidPrice,
                        &at.field(key),
                        format!("`{key}` does not apply to a tiered price"),
                    );
                    ok = false;
                }
            }
            if raw.tiers_mode.is_none() {
                self.report(
                    ErrorCode::InvalidPrice,
                    &at.field("tiersMode"),
                    "a tiered price needs a `tiersMode`",
                );
            }
            let tiers = self.tiers(tiers, at);
            return match (raw.tiers_mode, tiers) {
                (Some(mode), Some(tiers)) if ok => Some(UnitScheme::Tiered { mode, tiers }),
                _ => None,
            };
        }
        if raw.tiers_mode.is_some() {
            self.report(
                ErrorCode::InvalidPrice,
                &at.field("tiersMode"),
                "`tiersMode` needs `tiers`",
            );
            return None;
        }
        let Some(unit_price) = &raw.unit_price else {
            self.report(
                ErrorCode::InvalidPrice,
                &at.field("unitPrice"),
                "a price by quantity needs `unitPrice`, `tiers` or `blockSize`",
            );
            return None;
        };
        let unit_price =
            self.amount(unit_price, &at.field("unitPrice"), ErrorCode::InvalidPrice)?;
        match raw.block_size {
            None => Some(UnitScheme::PerUnit { unit_price }),
            Some(size) => match u64::try_from(size) {
                Ok(block_size) if block_size >= 1 => Some(UnitScheme::Package {
                    block_size,
                    unit_price,
                }),
                _ => {
                    self.report(
                        ErrorCode::InvalidPrice,
                        &at.field("blockSize"),
                        format!("blockSize {size} is below 1"),
                    );
                    None
                }
            },
        }
    }

    fn tiers(&mut self, raw: &'r [RawTier], price_at: &At<'_>) -> Option<Vec<Tier>> {
        if raw.is_empty() {
            self.report(
                ErrorCode::InvalidTiers,
                &price_at.field("tiers"),
                "a tiered price needs at least one tier",
            );
            return None;
        }
        let last = raw.len().saturating_sub(1);
        let mut previous: Option<u64> = None;
        let mut tiers = Vec::with_capacity(raw.len());
        let mut ok = true;
        for (k, tier) in raw.iter().enumerate() {
            let at = price_at.index("tiers", k);
            let up_to = match (tier.up_to, k == last) {
                (None, true) => None,
                (Some(_), true) => {
                    self.report(
                        ErrorCode::InvalidTiers,
                        &at.field("upTo"),
                        "the last tier must be unbounded (no `upTo`)",
                    );
                    ok = false;
                    None
                }
                (None, false) => {
                    self.report(
                        ErrorCode::InvalidTiers,
                        &at.field("upTo"),
                        "only the last tier may be unbounded",
                    );
                    ok = false;
                    None
                }
                (Some(bound), false) => match (u64::try_from(bound), previous) {
                    (Ok(b), Some(p)) if b > p => {
                        previous = Some(b);
                        Some(b)
                    }
                    (Ok(b), None) if b >= 1 => {
                        previous = Some(b);
                        Some(b)
                    }
                    (_, Some(p)) => {
                        self.report(
                            ErrorCode::InvalidTiers,
                            &at.field("upTo"),
                            format!("upTo {bound} is not above the previous tier's upTo {p}"),
                        );
                        ok = false;
                        None
                    }
                    (_, None) => {
                        self.report(
                            ErrorCode::InvalidTiers,
                            &at.field("upTo"),
                            format!("upTo {bound} is below 1"),
                        );
                        ok = false;
                        None
                    }
                },
            };
            let unit_price = match &tier.unit_price {
                Some(text) => self.amount(text, &at.field("unitPrice"), ErrorCode::InvalidPrice),
                None => Some(Decimal::ZERO),
            };
            let flat_price = match &tier.flat_price {
                Some(text) => self.amount(text, &at.field("flatPrice"), ErrorCode::InvalidPrice),
                None => Some(Decimal::ZERO),
            };
            match (unit_price, flat_price) {
                (Some(unit_price), Some(flat_price)) => tiers.push(Tier {
                    up_to,
                    unit_price,
                    flat_price,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(tiers)
    }

    /// Parses a non-negative amount; a negative one is reported with `negative_code`.
    fn amount(
        &mut self,
        text: &AmountText,
        at: &At<'_>,
        negative_code: ErrorCode,
    ) -> Option<Decimal> {
        match parse_amount(&text.0) {
            Ok(value) if value.is_sign_negative() && !value.is_zero() => {
                self.report(
                    negative_code,
                    at,
                    format!("amount `{}` is negative", text.0),
                );
                None
            }
            Ok(value) => Some(value),
            Err(AmountParseError::TooLarge) => {
                self.report(
                    ErrorCode::AmountTooLarge,
                    at,
                    format!("amount `{}` is beyond what a decimal holds", text.0),
                );
                None
            }
            Err(AmountParseError::Malformed) => {
                self.report(
                    ErrorCode::BadUserInput,
                    at,
                    format!("`{}` is not a number", text.0),
                );
                None
            }
        }
    }

    fn entitlements(
        &mut self,
        raw: &'r [RawEntitlement],
        owner_at: &At<'_>,
        owner: Owner,
    ) -> Vec<Entitlement> {
        let mut seen: FxHashSet<&str> =
            FxHashSet::with_capacity_and_hasher(raw.len(), Default::default());
        let mut out = Vec::with_capacity(raw.len());
        for (k, entitlement) in raw.iter().enumerate() {
            let at = owner_at.index("entitlements", k);
            if !seen.insert(entitlement.feature_id.as_str()) {
                self.report(
                    ErrorCode::InvalidEntitlement,
                    &at.field("featureId"),
                    format!(
                        "feature `{}` is entitled more than once",
                        entitlement.feature_id
                    ),
                );
                continue;
            }
            if let Some(e) = self.entitlement(entitlement, &at, owner) {
                out.push(e);
            }
        }
        out
    }

    fn entitlement(
        &mut self,
        raw: &'r RawEntitlement,
        at: &At<'_>,
        owner: Owner,
    ) -> Option<Entitlement> {
        let Some(feature) = self.raw_feature(&raw.feature_id) else {
            self.report(
                ErrorCode::UnknownReference,
                &at.field("featureId"),
                format!("feature `{}` does not exist", raw.feature_id),
            );
            return None;
        };
        let mut ok = true;
        if owner == Owner::Plan && raw.behavior.is_some() {
            self.report(
                ErrorCode::InvalidEntitlement,
                &at.field("behavior"),
                "`behavior` applies to add-on entitlements only",
            );
            ok = false;
        }
        let behavior = raw.behavior.unwrap_or(AddonBehavior::Increment);
        let kind = match feature.kind {
            RawFeatureType::Boolean => Kind::Boolean,
            RawFeatureType::Number => match feature.meter {
                None => Kind::Number,
                Some(meter) => Kind::Metered(meter),
            },
            RawFeatureType::Enum => Kind::Enum(feature.values.as_deref().unwrap_or_default()),
        };
        let fields = Fields {
            granted: raw.granted,
            value: raw.value,
            usage_limit: raw.usage_limit,
            has_unlimited_usage: raw.has_unlimited_usage,
            has_soft_limit: raw.has_soft_limit,
            reset_period: raw.reset_period,
            reset_anchor: raw.reset_anchor,
            values: raw.values.as_deref(),
        };
        let value = match entitlement_value(&raw.feature_id, kind, &fields) {
            Ok(value) => value,
            Err(problems) => {
                // With a misplaced `behavior`, only the other misplaced fields are reported:
                // the value itself is not looked at.
                for p in problems.iter().filter(|p| ok || p.misplaced) {
                    let path = match p.index {
                        Some(i) => at.index(p.key, i),
                        None => at.field(p.key),
                    };
                    self.report(ErrorCode::InvalidEntitlement, &path, p.message.clone());
                }
                return None;
            }
        };
        if !ok {
            return None;
        }
        Some(Entitlement {
            feature: FeatureId::new(raw.feature_id.as_str()),
            value,
            behavior,
        })
    }

    /// Plan inheritance forms at most one parent per plan id (references resolve to the
    /// latest version), so cycles are found by walking each chain once, coloring as we go.
    fn check_plan_cycles(&mut self) {
        let raw = self.raw;
        // 0 unvisited, 1 on the current walk, 2 done.
        let mut state: FxHashMap<&str, u8> =
            FxHashMap::with_capacity_and_hasher(self.latest_plans.len(), Default::default());
        for (i, plan) in raw.plans.iter().enumerate() {
            if self.latest_plans.get(plan.id.as_str()) != Some(&i) {
                // An older version that names its own id inherits from itself, as an older
                // add-on version that names its own id depends on itself.
                if plan.parent_plan_id.as_deref() == Some(plan.id.as_str()) {
                    self.report(
                        ErrorCode::PlansCircularDependencyError,
                        &At::item("plans", i).field("parentPlanId"),
                        format!("plan inheritance cycle: {0} → {0}", plan.id),
                    );
                }
                continue;
            }
            let mut walk: Vec<&str> = Vec::new();
            let mut current = Some(plan.id.as_str());
            while let Some(id) = current {
                match state.get(id).copied().unwrap_or(0) {
                    2 => break,
                    1 => {
                        let start = walk.iter().position(|w| *w == id).unwrap_or(0);
                        let cycle: Vec<&str> = walk
                            .iter()
                            .skip(start)
                            .copied()
                            .chain(std::iter::once(id))
                            .collect();
                        let first = walk.get(start).copied().unwrap_or(id);
                        let position = self.latest_plans.get(first).copied().unwrap_or(i);
                        self.report(
                            ErrorCode::PlansCircularDependencyError,
                            &At::item("plans", position).field("parentPlanId"),
                            format!("plan inheritance cycle: {}", cycle.join(" → ")),
                        );
                        break;
                    }
                    _ => {
                        state.insert(id, 1);
                        walk.push(id);
                        current = self
                            .latest_plan(id)
                            .and_then(|p| p.parent_plan_id.as_deref());
                    }
                }
            }
            for id in walk {
                state.insert(id, 2);
            }
        }
    }

    /// Add-on dependencies form a directed graph over add-on ids (latest versions); an
    /// iterative depth-first search reports each cycle once, at the dependency that closes it.
    fn check_addon_cycles(&mut self) {
        let raw = self.raw;
        let mut state: FxHashMap<&str, u8> =
            FxHashMap::with_capacity_and_hasher(self.latest_addons.len(), Default::default());
        for (i, addon) in raw.addons.iter().enumerate() {
            if self.latest_addons.get(addon.id.as_str()) != Some(&i) {
                // An older version that names its own id depends on itself.
                if let Some(j) = addon.dependencies.iter().position(|d| *d == addon.id) {
                    self.report(
                        ErrorCode::AddonsCircularDependencyError,
                        &At::item("addons", i).index("dependencies", j),
                        format!("add-on dependency cycle: {0} → {0}", addon.id),
                    );
                }
                continue;
            }
            if state.get(addon.id.as_str()).copied().unwrap_or(0) != 0 {
                continue;
            }
            // Stack of (add-on position, next dependency to look at).
            let mut stack: Vec<(usize, usize)> = vec![(i, 0)];
            state.insert(addon.id.as_str(), 1);
            while let Some(&mut (position, ref mut next)) = stack.last_mut() {
                let Some(current) = raw.addons.get(position) else {
                    stack.pop();
                    continue;
                };
                let Some(dependency) = current.dependencies.get(*next) else {
                    state.insert(current.id.as_str(), 2);
                    stack.pop();
                    continue;
                };
                let j = *next;
                *next = next.saturating_add(1);
                let Some(&dep_position) = self.latest_addons.get(dependency.as_str()) else {
                    continue;
                };
                match state.get(dependency.as_str()).copied().unwrap_or(0) {
                    0 => {
                        state.insert(dependency.as_str(), 1);
                        stack.push((dep_position, 0));
                    }
                    1 => {
                        let start = stack
                            .iter()
                            .position(|(p, _)| *p == dep_position)
                            .unwrap_or(0);
                        let cycle: Vec<&str> = stack
                            .iter()
                            .skip(start)
                            .filter_map(|(p, _)| raw.addons.get(*p).map(|a| a.id.as_str()))
                            .chain(std::iter::once(dependency.as_str()))
                            .collect();
                        self.report(
                            ErrorCode::AddonsCircularDependencyError,
                            &At::item("addons", position).index("dependencies", j),
                            format!("add-on dependency cycle: {}", cycle.join(" → ")),
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    fn coupon(&mut self, raw: &'r RawCoupon, at: &At<'_>) -> Coupon {
        let discount = match raw.kind {
            RawCouponType::Percentage => {
                if raw.amounts_off.is_some() {
                    self.report(
                        ErrorCode::InvalidCoupon,
                        &at.field("amountsOff"),
                        "a PERCENTAGE coupon takes `percentOff`, not `amountsOff`",
                    );
                }
                match &raw.percent_off {
                    None => {
                        self.report(
                            ErrorCode::InvalidCoupon,
                            &at.field("percentOff"),
                            "a PERCENTAGE coupon needs `percentOff`",
                        );
                        None
                    }
                    Some(text) => {
                        let percent =
                            self.amount(text, &at.field("percentOff"), ErrorCode::InvalidCoupon);
                        match percent {
                            Some(p) if p > Decimal::ZERO && p <= Decimal::ONE_HUNDRED => {
                                Some(Discount::Percentage(p))
                            }
                            Some(p) => {
                                self.report(
                                    ErrorCode::InvalidCoupon,
                                    &at.field("percentOff"),
                                    format!("percentOff {p} is not in (0, 100]"),
                                );
                                None
                            }
                            None => None,
                        }
                    }
                }
            }
            RawCouponType::Fixed => {
                if raw.percent_off.is_some() {
                    self.report(
                        ErrorCode::InvalidCoupon,
                        &at.field("percentOff"),
                        "a FIXED coupon takes `amountsOff`, not `percentOff`",
                    );
                }
                match raw.amounts_off.as_deref() {
                    None | Some([]) => {
                        self.report(
                            ErrorCode::InvalidCoupon,
                            &at.field("amountsOff"),
                            "a FIXED coupon needs at least one amount",
                        );
                        None
                    }
                    Some(amounts) => {
                        let mut by_currency = BTreeMap::new();
                        for (j, off) in amounts.iter().enumerate() {
                            let off_at = at.index("amountsOff", j);
                            let Some(currency) = Currency::parse(&off.currency) else {
                                self.report(
                                    ErrorCode::UnknownCurrency,
                                    &off_at.field("currency"),
                                    format!("`{}` is not an ISO 4217 currency code", off.currency),
                                );
                                continue;
                            };
                            let Some(amount) = self.amount(
                                &off.amount,
                                &off_at.field("amount"),
                                ErrorCode::InvalidCoupon,
                            ) else {
                                continue;
                            };
                            if by_currency.insert(currency, amount).is_some() {
                                self.report(
                                    ErrorCode::InvalidCoupon,
                                    &off_at.field("currency"),
                                    format!("`{currency}` is listed more than once"),
                                );
                            }
                        }
                        Some(Discount::Fixed(by_currency))
                    }
                }
            }
        };
        let duration = match (raw.duration, raw.duration_in_months) {
            (RawCouponDuration::Repeating, Some(months)) => match u32::try_from(months) {
                Ok(m) if m >= 1 => CouponDuration::Repeating(m),
                _ => {
                    self.report(
                        ErrorCode::InvalidCoupon,
                        &at.field("durationInMonths"),
                        format!("durationInMonths {months} is below 1"),
                    );
                    CouponDuration::Once
                }
            },
            (RawCouponDuration::Repeating, None) => {
                self.report(
                    ErrorCode::InvalidCoupon,
                    &at.field("durationInMonths"),
                    "a REPEATING coupon needs `durationInMonths`",
                );
                CouponDuration::Once
            }
            (_, Some(_)) => {
                self.report(
                    ErrorCode::InvalidCoupon,
                    &at.field("durationInMonths"),
                    "`durationInMonths` applies to REPEATING coupons only",
                );
                CouponDuration::Once
            }
            (RawCouponDuration::Once, None) => CouponDuration::Once,
            (RawCouponDuration::Forever, None) => CouponDuration::Forever,
        };
        let mut promotion_codes = Vec::with_capacity(raw.promotion_codes.len());
        for (j, code) in raw.promotion_codes.iter().enumerate() {
            let code_at = at.index("promotionCodes", j);
            if code.code.is_empty() {
                self.report(
                    ErrorCode::InvalidCoupon,
                    &code_at.field("code"),
                    "a promotion code cannot be empty",
                );
            }
            for (field, instant) in [
                ("activeFrom", code.active_from),
                ("expiresAt", code.expires_at),
            ] {
                if let Err(e) = crate::period::check_instants(&[(field, instant)]) {
                    self.report(ErrorCode::InvalidCoupon, &code_at.field(field), e.message());
                }
            }
            if let (Some(from), Some(to)) = (code.active_from, code.expires_at) {
                if from >= to {
                    self.report(
                        ErrorCode::InvalidCoupon,
                        &code_at.field("expiresAt"),
                        "`expiresAt` is not after `activeFrom`",
                    );
                }
            }
            let max_redemptions = code.max_redemptions.and_then(|m| match u64::try_from(m) {
                Ok(m) if m >= 1 => Some(m),
                _ => {
                    self.report(
                        ErrorCode::InvalidCoupon,
                        &code_at.field("maxRedemptions"),
                        format!("maxRedemptions {m} is below 1"),
                    );
                    None
                }
            });
            let minimum_amount = code.minimum_amount.as_ref().and_then(|text| {
                self.amount(
                    text,
                    &code_at.field("minimumAmount"),
                    ErrorCode::InvalidCoupon,
                )
            });
            let plans = code.plan_ids.as_ref().map(|ids| {
                ids.iter()
                    .enumerate()
                    .filter_map(|(k, id)| {
                        if self.latest_plans.contains_key(id.as_str()) {
                            Some(PlanId::new(id.as_str()))
                        } else {
                            self.report(
                                ErrorCode::UnknownReference,
                                &code_at.index("planIds", k),
                                format!("plan `{id}` does not exist"),
                            );
                            None
                        }
                    })
                    .collect()
            });
            promotion_codes.push(PromotionCode {
                code: code.code.clone(),
                active_from: code.active_from,
                expires_at: code.expires_at,
                max_redemptions,
                first_purchase_only: code.first_purchase_only,
                minimum_amount,
                customers: code
                    .customer_ids
                    .as_ref()
                    .map(|ids| ids.iter().map(|id| CustomerId::new(id.as_str())).collect()),
                plans,
            });
        }
        Coupon {
            id: CouponId::new(raw.id.as_str()),
            name: raw.name.clone(),
            description: raw.description.clone(),
            discount: discount.unwrap_or(Discount::Percentage(Decimal::ZERO)),
            duration,
            promotion_codes,
        }
    }
}

#[derive(Clone, Copy)]
enum JourneyNeed {
    Free,
    Trial,
}
