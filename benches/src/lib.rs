//! Generators and setups shared by the criterion benchmarks and `decide-loop`.

use serde_json::{Value, json};

pub mod setup;

/// Products of a generated catalog; plan `i` belongs to `PRODUCTS[i % 2]`.
const PRODUCTS: [&str; 2] = ["analytics", "workspaces"];

/// Add-ons per product.
const ADDONS_PER_PRODUCT: usize = 4;

/// Longest parent chain of a generated catalog: every fourth plan of a product starts a new
/// chain, so a plan has at most three ancestors.
const CHAIN: usize = 4;

/// A valid catalog (FORMAT.md §1) with `plans` plans, deterministic for a given count.
///
/// It has six features (boolean, numeric, metered fluctuating and incremental, enum), two
/// products, four add-ons per product (flat fees, dependencies on the product's previous
/// add-on, increment and override entitlements) and three coupons. Plans alternate between
/// the products; one in ten is free, the others are paid with monthly and annual flat fees
/// plus, in turn, a per-unit, graduated, volume or package price of a feature, a usage-based
/// price, and sometimes a German price set and a trial. Every fourth plan of a product starts
/// a parent chain that the next three extend. Each plan has five entitlements and two
/// compatible add-ons of its product.
#[must_use]
pub fn generated_catalog(plans: usize) -> Vec<u8> {
    let catalog = json!({
        "features": features(),
        "products": products(),
        "plans": (0..plans).map(plan).collect::<Vec<_>>(),
        "addons": addons(),
        "coupons": coupons(plans),
    });
    // Serializing a `Value` cannot fail: every map key is a string.
    serde_json::to_vec(&catalog).unwrap_or_default()
}

fn features() -> Value {
    json!([
        {"id": "sso", "name": "Single sign-on", "type": "BOOLEAN"},
        {"id": "seats", "name": "Seats", "type": "NUMBER", "meter": "FLUCTUATING", "unit": "seat"},
        {"id": "api-calls", "type": "NUMBER", "meter": "INCREMENTAL", "unit": "call"},
        {"id": "storage-gb", "type": "NUMBER", "meter": "FLUCTUATING", "unit": "GB"},
        {"id": "projects", "type": "NUMBER"},
        {"id": "region", "type": "ENUM", "values": ["us", "eu", "apac"]}
    ])
}

fn products() -> Value {
    json!([
        {"id": "analytics", "multipleSubscriptions": false,
         "journey": {"startSetup": "PLAN_SELECTION", "endSetup": "CANCEL_SUBSCRIPTION",
                     "downgradeStrategy": "END_OF_BILLING_PERIOD"}},
        {"id": "workspaces", "multipleSubscriptions": true,
         "journey": {"cancellationTime": "END_OF_BILLING_PERIOD",
                     "usageResetOnChange": "BILLING_PERIOD_CHANGE"}}
    ])
}

fn product_of(index: usize) -> &'static str {
    PRODUCTS.get(index % 2).copied().unwrap_or("analytics")
}

fn addon_id(product: &str, n: usize) -> String {
    format!("{product}-addon-{n}")
}

fn addons() -> Vec<Value> {
    PRODUCTS
        .iter()
        .flat_map(|product| {
            (0..ADDONS_PER_PRODUCT).map(move |n| {
                let dependencies: Vec<String> = n
                    .checked_sub(1)
                    .map(|previous| addon_id(product, previous))
                    .into_iter()
                    .collect();
                let entitlement = if n % 2 == 0 {
                    json!({"featureId": "projects", "value": 5, "behavior": "INCREMENT"})
                } else {
                    json!({"featureId": "api-calls", "usageLimit": 100_000,
                           "resetPeriod": "MONTH", "behavior": "OVERRIDE"})
                };
                json!({
                    "id": addon_id(product, n),
                    "productId": product,
                    "maxQuantity": 10,
                    "dependencies": dependencies,
                    "prices": [
                        {"billingPeriod": "MONTHLY", "model": "FLAT_FEE",
                         "amount": format!("{n}.50"), "currency": "USD"},
                        {"billingPeriod": "ANNUALLY", "model": "FLAT_FEE",
                         "amount": n.saturating_mul(10).saturating_add(5), "currency": "USD"}
                    ],
                    "entitlements": [entitlement]
                })
            })
        })
        .collect()
}

fn plan_id(index: usize) -> String {
    format!("plan-{index}")
}

fn plan(index: usize) -> Value {
    let product = product_of(index);
    // Plans of a product are every other plan: the previous one of the same product is
    // `index - 2`.
    let parent = if (index / 2) % CHAIN == 0 {
        None
    } else {
        index.checked_sub(2).map(plan_id)
    };
    let first = addon_id(product, index % ADDONS_PER_PRODUCT);
    let second = addon_id(product, (index / ADDONS_PER_PRODUCT) % ADDONS_PER_PRODUCT);
    let compatible = if first == second {
        vec![first]
    } else {
        vec![first, second]
    };
    let mut plan = json!({
        "id": plan_id(index),
        "name": format!("Plan {index}"),
        "productId": product,
        "version": 1,
        "pricingType": if index % 10 == 0 { "FREE" } else { "PAID" },
        "compatibleAddonIds": compatible,
        "entitlements": entitlements(index),
    });
    if let Some(object) = plan.as_object_mut() {
        if let Some(parent) = parent {
            object.insert("parentPlanId".to_owned(), json!(parent));
        }
        if index % 10 != 0 {
            object.insert("prices".to_owned(), json!(prices(index, "USD")));
            if index % 3 == 0 {
                object.insert(
                    "localizedPrices".to_owned(),
                    json!({"DE": prices(index, "EUR")}),
                );
            }
            if index % 4 == 1 {
                object.insert(
                    "defaultTrial".to_owned(),
                    json!({"duration": 14, "unit": "DAY", "endBehavior": "CONVERT_TO_PAID"}),
                );
            }
        }
    }
    plan
}

fn prices(index: usize, currency: &str) -> Vec<Value> {
    let base = index % 90;
    let mut prices = vec![
        json!({"billingPeriod": "MONTHLY", "model": "FLAT_FEE",
               "amount": format!("{base}.99"), "currency": currency}),
        json!({"billingPeriod": "ANNUALLY", "model": "FLAT_FEE",
               "amount": base.saturating_mul(10).saturating_add(9), "currency": currency}),
    ];
    let by_quantity = match index % 4 {
        0 => json!({"billingPeriod": "MONTHLY", "model": "PER_UNIT", "featureId": "seats",
                    "unitPrice": format!("{}.5", base % 20), "currency": currency,
                    "minUnitQuantity": 1, "maxUnitQuantity": 500}),
        1 => json!({"billingPeriod": "MONTHLY", "model": "PER_UNIT", "featureId": "seats",
                    "tiersMode": "GRADUATED", "currency": currency, "minUnitQuantity": 1,
                    "tiers": [{"upTo": 5, "unitPrice": 20}, {"upTo": 10, "unitPrice": 15},
                              {"unitPrice": 10, "flatPrice": 5}]}),
        2 => json!({"billingPeriod": "ANNUALLY", "model": "PER_UNIT", "featureId": "seats",
                    "tiersMode": "VOLUME", "currency": currency, "maxUnitQuantity": 1000,
                    "tiers": [{"upTo": 100, "unitPrice": 100}, {"unitPrice": 80}]}),
        _ => json!({"billingPeriod": "MONTHLY", "model": "PER_UNIT", "featureId": "projects",
                    "blockSize": 10, "unitPrice": 25, "currency": currency}),
    };
    prices.push(by_quantity);
    if index % 5 == 0 {
        prices.push(json!({"billingPeriod": "MONTHLY", "model": "USAGE_BASED",
                           "featureId": "storage-gb", "unitPrice": "0.0001",
                           "currency": currency}));
    }
    prices
}

fn entitlements(index: usize) -> Vec<Value> {
    let regions: &[&str] = match index % 3 {
        0 => &["us"],
        1 => &["us", "eu"],
        _ => &["us", "eu", "apac"],
    };
    let api_calls = if index % 7 == 0 {
        json!({"featureId": "api-calls", "hasUnlimitedUsage": true})
    } else {
        json!({"featureId": "api-calls", "usageLimit": index % 1000, "resetPeriod": "MONTH",
               "hasSoftLimit": index % 2 == 0})
    };
    vec![
        json!({"featureId": "sso", "granted": index % 2 == 1}),
        json!({"featureId": "projects", "value": index % 100}),
        json!({"featureId": "seats", "usageLimit": index % 50}),
        api_calls,
        json!({"featureId": "region", "values": regions}),
    ]
}

fn coupons(plans: usize) -> Value {
    let plan_ids: Vec<String> = (0..plans.min(3)).map(plan_id).collect();
    json!([
        {"id": "launch", "type": "PERCENTAGE", "percentOff": 20, "duration": "REPEATING",
         "durationInMonths": 3,
         "promotionCodes": [{"code": "LAUNCH20", "maxRedemptions": 100,
                             "firstPurchaseOnly": true}]},
        {"id": "ten-off", "type": "FIXED", "duration": "ONCE",
         "amountsOff": [{"amount": 10, "currency": "USD"}, {"amount": "9.50", "currency": "EUR"}],
         "promotionCodes": [{"code": "TENOFF", "activeFrom": "2025-01-01T00:00:00Z",
                             "expiresAt": "2026-01-01T00:00:00Z", "minimumAmount": 20,
                             "planIds": plan_ids}]},
        {"id": "forever-half", "type": "PERCENTAGE", "percentOff": "50", "duration": "FOREVER"}
    ])
}

#[cfg(test)]
mod tests {
    use super::generated_catalog;
    use tollgate_core::Catalog;

    #[test]
    fn generated_catalogs_validate() {
        for plans in [0, 1, 2, 7, 100, 1_000] {
            let bytes = generated_catalog(plans);
            let catalog = match Catalog::from_json(&bytes) {
                Ok(catalog) => catalog,
                Err(e) => panic!("{plans} plans: {e}"),
            };
            assert_eq!(catalog.plans().len(), plans);
            assert_eq!(catalog.addons().len(), 8);
            assert_eq!(catalog.coupons().len(), 3);
        }
    }

    #[test]
    fn parent_chains_are_bounded() {
        let catalog = Catalog::from_json(&generated_catalog(1_000)).unwrap();
        let deepest = catalog
            .plans()
            .iter()
            .map(|plan| catalog.ancestors(plan).count())
            .max();
        assert_eq!(deepest, Some(3));
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(generated_catalog(50), generated_catalog(50));
    }
}
