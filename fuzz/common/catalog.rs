//! Catalogs for the decision fuzz targets: the reference catalog, or a small catalog built
//! from fuzz input (most of them load; those that do not fall back to the reference one).
//!
//! Generated catalogs reuse the reference catalog's feature ids and add plans `p0` (two
//! versions), `p1`, `p2`, add-ons `a0`, `a1` and the coupon `c0` with the code `CODE0`, so
//! the requests' vocabularies (see `requests.rs`) name things in either catalog.

use serde_json::{Value, json};
use std::sync::OnceLock;
use tollgate_core::Catalog;

const REFERENCE: &[u8] = include_bytes!("../../crates/core/tests/data/reference-catalog.json");

/// The reference catalog, loaded twice: the catalog's hash indexes are seeded per load, so
/// deciding with both copies checks that no decision depends on hash order.
pub fn reference() -> &'static (Catalog, Catalog) {
    static LOADED: OnceLock<(Catalog, Catalog)> = OnceLock::new();
    LOADED.get_or_init(|| {
        let load = || Catalog::from_json(REFERENCE).expect("the reference catalog loads");
        (load(), load())
    })
}

fuzz_enum! {
    /// An amount as a catalog writes it.
    pub enum Amount {
        Zero,
        Whole(u8),
        Cents(u16),
        Fine(u16),
        Huge,
        Negative(u8),
    }
}

impl Amount {
    fn json(&self) -> Value {
        Value::String(match self {
            Self::Zero => "0".to_owned(),
            Self::Whole(n) => n.to_string(),
            Self::Cents(c) => format!("{}.{:02}", c / 100, c % 100),
            Self::Fine(f) => format!("0.{:04}", f % 10_000),
            Self::Huge => "79228162514264337593543950335".to_owned(),
            Self::Negative(n) => format!("-{n}"),
        })
    }
}

fuzz_enum! {
    /// A billing period.
    pub enum PeriodChoice {
        Monthly,
        Quarterly,
        Annually,
    }
}

impl PeriodChoice {
    /// The period's name in requests and catalogs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Monthly => "MONTHLY",
            Self::Quarterly => "QUARTERLY",
            Self::Annually => "ANNUALLY",
        }
    }
}

fuzz_enum! {
    /// How a per-unit or usage price charges.
    pub enum GenScheme {
        Unit(Amount),
        Package(u8, Amount),
        Tiered(bool, [Option<(u8, Amount)>; 2], Amount),
    }
}

fuzz_enum! {
    /// A price model.
    pub enum GenModel {
        Flat(Amount),
        PerUnit(u8, GenScheme, Option<u8>, Option<u8>),
        Usage(u8, GenScheme),
    }
}

fuzz_struct! {
    /// A price.
    pub struct GenPrice {
        pub period: PeriodChoice,
        pub model: GenModel,
    }
}

fuzz_enum! {
    /// A plan's pricing type.
    pub enum PricingChoice {
        Free,
        Paid,
        Custom,
    }
}

fuzz_struct! {
    /// A plan's default trial.
    pub struct GenTrial {
        pub count: u8,
        pub months: bool,
        pub cancel: bool,
        pub requires_payment_method: bool,
    }
}

fuzz_struct! {
    /// An entitlement of a plan or add-on.
    pub struct GenEntitlement {
        pub feature: u8,
        pub amount: u16,
        pub unlimited: bool,
        pub soft: bool,
        pub reset: Option<u8>,
        pub anchor: u8,
    }
}

fuzz_struct! {
    /// A plan.
    pub struct GenPlan {
        pub multi: bool,
        pub kind: PricingChoice,
        pub parent: Option<u8>,
        pub currency: u8,
        pub prices: [Option<GenPrice>; 3],
        pub localized: Option<(u8, GenPrice)>,
        pub trial: Option<GenTrial>,
        pub addons: u8,
        pub entitlements: [Option<GenEntitlement>; 2],
    }
}

fuzz_struct! {
    /// An add-on.
    pub struct GenAddon {
        pub multi: bool,
        pub currency: u8,
        pub max: u8,
        pub depends: bool,
        pub price: Option<(PeriodChoice, Amount)>,
        pub entitlement: Option<GenEntitlement>,
        pub increment: bool,
    }
}

fuzz_struct! {
    /// A coupon with one promotion code.
    pub struct GenCoupon {
        pub percent: Option<u8>,
        pub fixed: u16,
        pub duration: u8,
        pub months: u8,
        pub max_redemptions: Option<u8>,
        pub first_purchase_only: bool,
        pub minimum: Option<u8>,
    }
}

fuzz_struct! {
    /// The single-subscription product's customer journey.
    pub struct GenJourney {
        pub start_free: bool,
        pub downgrade_to_free: bool,
        pub downgrade_strategy: u8,
        pub cancel_at_period_end: bool,
        pub convert_now: bool,
        pub usage_reset: u8,
    }
}

fuzz_struct! {
    /// A small catalog.
    pub struct GenCatalog {
        pub journey: GenJourney,
        pub plans: [Option<GenPlan>; 4],
        pub addons: [Option<GenAddon>; 2],
        pub coupon: Option<GenCoupon>,
    }
}

/// Plan ids of the generated catalog, by position: `p0` has two versions.
const PLAN_IDS: [&str; 4] = ["p0", "p0", "p1", "p2"];
const ADDON_IDS: [&str; 2] = ["a0", "a1"];
const CURRENCIES: [&str; 4] = ["USD", "EUR", "JPY", "KWD"];
const COUNTRIES: [&str; 3] = ["DE", "JP", "GB"];
/// (id, type, meter) of the generated catalog's features.
const FEATURES: [(&str, &str, Option<&str>); 6] = [
    ("sso", "BOOLEAN", None),
    ("seats", "NUMBER", Some("FLUCTUATING")),
    ("api-calls", "NUMBER", Some("INCREMENTAL")),
    ("storage-gb", "NUMBER", Some("FLUCTUATING")),
    ("projects", "NUMBER", None),
    ("region", "ENUM", None),
];
const RESETS: [&str; 5] = ["HOUR", "DAY", "WEEK", "MONTH", "YEAR"];
const ANCHORS: [&str; 3] = ["SUBSCRIPTION_START", "START_OF_THE_MONTH", "EVERY_MONDAY"];

fn pick<T: Copy>(options: &[T], n: u8) -> T {
    options[usize::from(n) % options.len()]
}

fn scheme(scheme: &GenScheme, price: &mut serde_json::Map<String, Value>) {
    match scheme {
        GenScheme::Unit(amount) => {
            price.insert("unitPrice".to_owned(), amount.json());
        }
        GenScheme::Package(size, amount) => {
            price.insert("blockSize".to_owned(), json!(size));
            price.insert("unitPrice".to_owned(), amount.json());
        }
        GenScheme::Tiered(volume, bounded, last) => {
            let mut tiers: Vec<Value> = Vec::new();
            let mut up_to = 0u32;
            for (step, amount) in bounded.iter().flatten() {
                up_to += u32::from(*step);
                tiers.push(json!({"upTo": up_to, "unitPrice": amount.json()}));
            }
            tiers.push(json!({"unitPrice": last.json(), "flatPrice": "1"}));
            let mode = if *volume { "VOLUME" } else { "GRADUATED" };
            price.insert("tiersMode".to_owned(), json!(mode));
            price.insert("tiers".to_owned(), Value::Array(tiers));
        }
    }
}

fn price(spec: &GenPrice, currency: &str) -> Value {
    let mut price = serde_json::Map::new();
    price.insert("billingPeriod".to_owned(), json!(spec.period.name()));
    price.insert("currency".to_owned(), json!(currency));
    match &spec.model {
        GenModel::Flat(amount) => {
            price.insert("model".to_owned(), json!("FLAT_FEE"));
            price.insert("amount".to_owned(), amount.json());
        }
        GenModel::PerUnit(feature, how, min, max) => {
            // Per-unit prices are on numeric features.
            let feature = pick(&["seats", "storage-gb", "projects"], *feature);
            price.insert("model".to_owned(), json!("PER_UNIT"));
            price.insert("featureId".to_owned(), json!(feature));
            scheme(how, &mut price);
            if let Some(min) = min {
                price.insert("minUnitQuantity".to_owned(), json!(min));
            }
            if let Some(max) = max {
                price.insert("maxUnitQuantity".to_owned(), json!(max));
            }
        }
        GenModel::Usage(feature, how) => {
            let feature = pick(&["api-calls", "storage-gb"], *feature);
            price.insert("model".to_owned(), json!("USAGE_BASED"));
            price.insert("featureId".to_owned(), json!(feature));
            scheme(how, &mut price);
        }
    }
    Value::Object(price)
}

fn entitlement(spec: &GenEntitlement, behavior: Option<&str>) -> Value {
    let (feature, kind, meter) = pick(&FEATURES, spec.feature);
    let mut e = serde_json::Map::new();
    e.insert("featureId".to_owned(), json!(feature));
    match (kind, meter) {
        ("BOOLEAN", _) => {
            e.insert(
                "granted".to_owned(),
                json!(spec.unlimited || spec.amount & 3 != 0),
            );
        }
        ("ENUM", _) => {
            let values: Vec<&str> = ["us", "eu", "apac"]
                .into_iter()
                .enumerate()
                .filter(|(i, _)| spec.amount & (1 << i) != 0)
                .map(|(_, v)| v)
                .collect();
            e.insert("values".to_owned(), json!(values));
        }
        (_, None) => {
            e.insert("value".to_owned(), json!(spec.amount));
        }
        (_, Some(_)) => {
            if spec.unlimited {
                e.insert("hasUnlimitedUsage".to_owned(), json!(true));
            } else {
                e.insert("usageLimit".to_owned(), json!(spec.amount));
            }
            e.insert("hasSoftLimit".to_owned(), json!(spec.soft));
            if let Some(reset) = spec.reset {
                e.insert("resetPeriod".to_owned(), json!(pick(&RESETS, reset)));
                e.insert("resetAnchor".to_owned(), json!(pick(&ANCHORS, spec.anchor)));
            }
        }
    }
    if let Some(behavior) = behavior {
        e.insert("behavior".to_owned(), json!(behavior));
    }
    Value::Object(e)
}

impl GenCatalog {
    /// The catalog as JSON.
    pub fn json(&self) -> Value {
        let free_app_plan = self
            .plans
            .iter()
            .zip(PLAN_IDS)
            .find(|(p, _)| {
                p.as_ref()
                    .is_some_and(|p| !p.multi && p.kind == PricingChoice::Free)
            })
            .map(|(_, id)| id);
        let mut journey = serde_json::Map::new();
        match free_app_plan {
            Some(free) if self.journey.start_free => {
                journey.insert("startSetup".to_owned(), json!("FREE_PLAN"));
                journey.insert("startPlanId".to_owned(), json!(free));
            }
            _ => {
                journey.insert("startSetup".to_owned(), json!("PLAN_SELECTION"));
            }
        }
        match free_app_plan {
            Some(free) if self.journey.downgrade_to_free => {
                journey.insert("endSetup".to_owned(), json!("DOWNGRADE_TO_FREE"));
                journey.insert("downgradePlanId".to_owned(), json!(free));
            }
            _ => {
                journey.insert("endSetup".to_owned(), json!("CANCEL_SUBSCRIPTION"));
            }
        }
        let strategies = ["IMMEDIATE", "END_OF_BILLING_PERIOD", "END_OF_BILLING_MONTH"];
        journey.insert(
            "downgradeStrategy".to_owned(),
            json!(pick(&strategies, self.journey.downgrade_strategy)),
        );
        let cancellation = if self.journey.cancel_at_period_end {
            "END_OF_BILLING_PERIOD"
        } else {
            "IMMEDIATE"
        };
        journey.insert("cancellationTime".to_owned(), json!(cancellation));
        let conversion = if self.journey.convert_now {
            "IMMEDIATE"
        } else {
            "AT_TRIAL_END"
        };
        journey.insert("trialConversion".to_owned(), json!(conversion));
        let resets = ["ALWAYS_RESET", "NEVER_RESET", "BILLING_PERIOD_CHANGE"];
        journey.insert(
            "usageResetOnChange".to_owned(),
            json!(pick(&resets, self.journey.usage_reset)),
        );

        let mut plans = Vec::new();
        for (position, (plan, id)) in self.plans.iter().zip(PLAN_IDS).enumerate() {
            let Some(plan) = plan else { continue };
            let product = if plan.multi { "ws" } else { "app" };
            let currency = pick(&CURRENCIES, plan.currency);
            let kind = match plan.kind {
                PricingChoice::Free => "FREE",
                PricingChoice::Paid => "PAID",
                PricingChoice::Custom => "CUSTOM",
            };
            let mut p = serde_json::Map::new();
            p.insert("id".to_owned(), json!(id));
            p.insert("productId".to_owned(), json!(product));
            p.insert("version".to_owned(), json!(position + 1));
            p.insert("pricingType".to_owned(), json!(kind));
            if let Some(parent) = plan.parent {
                p.insert(
                    "parentPlanId".to_owned(),
                    json!(pick(&["p0", "p1", "p2"], parent)),
                );
            }
            if plan.kind == PricingChoice::Paid {
                let mut prices: Vec<Value> = plan
                    .prices
                    .iter()
                    .flatten()
                    .map(|g| price(g, currency))
                    .collect();
                if prices.is_empty() {
                    // A paid plan needs a price to load.
                    prices.push(json!({"billingPeriod": "MONTHLY", "model": "FLAT_FEE",
                                       "amount": "10", "currency": currency}));
                }
                p.insert("prices".to_owned(), Value::Array(prices));
                if let Some((country, local)) = &plan.localized {
                    let local_currency = if pick(&COUNTRIES, *country) == "JP" {
                        "JPY"
                    } else {
                        "EUR"
                    };
                    p.insert(
                        "localizedPrices".to_owned(),
                        json!({pick(&COUNTRIES, *country): [price(local, local_currency)]}),
                    );
                }
                if let Some(trial) = &plan.trial {
                    p.insert(
                        "defaultTrial".to_owned(),
                        json!({
                            "duration": 1 + trial.count % 30,
                            "unit": if trial.months { "MONTH" } else { "DAY" },
                            "endBehavior": if trial.cancel { "CANCEL_SUBSCRIPTION" } else { "CONVERT_TO_PAID" },
                            "requiresPaymentMethod": trial.requires_payment_method,
                        }),
                    );
                }
            }
            let compatible: Vec<&str> = ADDON_IDS
                .iter()
                .enumerate()
                .filter(|(i, _)| plan.addons & (1 << i) != 0)
                .map(|(_, a)| *a)
                .collect();
            p.insert("compatibleAddonIds".to_owned(), json!(compatible));
            let entitlements: Vec<Value> = plan
                .entitlements
                .iter()
                .flatten()
                .map(|e| entitlement(e, None))
                .collect();
            p.insert("entitlements".to_owned(), Value::Array(entitlements));
            plans.push(Value::Object(p));
        }

        let mut addons = Vec::new();
        for (position, (addon, id)) in self.addons.iter().zip(ADDON_IDS).enumerate() {
            let Some(addon) = addon else { continue };
            let mut a = serde_json::Map::new();
            a.insert("id".to_owned(), json!(id));
            a.insert(
                "productId".to_owned(),
                json!(if addon.multi { "ws" } else { "app" }),
            );
            a.insert("maxQuantity".to_owned(), json!(1 + addon.max % 10));
            if addon.depends && position > 0 {
                a.insert("dependencies".to_owned(), json!(["a0"]));
            }
            if let Some((period, amount)) = &addon.price {
                a.insert(
                    "prices".to_owned(),
                    json!([{"billingPeriod": period.name(), "model": "FLAT_FEE",
                            "amount": amount.json(), "currency": pick(&CURRENCIES, addon.currency)}]),
                );
            }
            if let Some(e) = &addon.entitlement {
                let behavior = if addon.increment {
                    "INCREMENT"
                } else {
                    "OVERRIDE"
                };
                a.insert(
                    "entitlements".to_owned(),
                    json!([entitlement(e, Some(behavior))]),
                );
            }
            addons.push(Value::Object(a));
        }

        let mut coupons = Vec::new();
        if let Some(c) = &self.coupon {
            let mut coupon = serde_json::Map::new();
            coupon.insert("id".to_owned(), json!("c0"));
            match c.percent {
                Some(p) => {
                    coupon.insert("type".to_owned(), json!("PERCENTAGE"));
                    coupon.insert("percentOff".to_owned(), json!(1 + u16::from(p) % 100));
                }
                None => {
                    coupon.insert("type".to_owned(), json!("FIXED"));
                    coupon.insert(
                        "amountsOff".to_owned(),
                        json!([{"amount": Amount::Cents(c.fixed).json(), "currency": "USD"},
                               {"amount": Amount::Whole(3).json(), "currency": "EUR"}]),
                    );
                }
            }
            match c.duration % 3 {
                0 => coupon.insert("duration".to_owned(), json!("ONCE")),
                1 => coupon.insert("duration".to_owned(), json!("FOREVER")),
                _ => {
                    coupon.insert("durationInMonths".to_owned(), json!(1 + c.months % 24));
                    coupon.insert("duration".to_owned(), json!("REPEATING"))
                }
            };
            let mut code = serde_json::Map::new();
            code.insert("code".to_owned(), json!("CODE0"));
            if let Some(max) = c.max_redemptions {
                code.insert("maxRedemptions".to_owned(), json!(max));
            }
            code.insert("firstPurchaseOnly".to_owned(), json!(c.first_purchase_only));
            if let Some(min) = c.minimum {
                code.insert("minimumAmount".to_owned(), json!(min));
            }
            coupon.insert("promotionCodes".to_owned(), json!([Value::Object(code)]));
            coupons.push(Value::Object(coupon));
        }

        let features: Vec<Value> = FEATURES
            .iter()
            .map(|(id, kind, meter)| match (*kind, meter) {
                ("ENUM", _) => json!({"id": id, "type": kind, "values": ["us", "eu", "apac"]}),
                (_, Some(meter)) => json!({"id": id, "type": kind, "meter": meter}),
                _ => json!({"id": id, "type": kind}),
            })
            .collect();
        json!({
            "features": features,
            "products": [
                {"id": "app", "multipleSubscriptions": false, "journey": Value::Object(journey)},
                {"id": "ws", "multipleSubscriptions": true}
            ],
            "plans": plans,
            "addons": addons,
            "coupons": coupons,
        })
    }

    /// The catalog, loaded twice (see [`reference`]), or `None` when it does not load.
    pub fn load(&self) -> Option<(Catalog, Catalog)> {
        let json = self.json();
        let a = Catalog::from_json_value(&json).ok()?;
        let b = Catalog::from_json_value(&json).ok()?;
        Some((a, b))
    }
}
