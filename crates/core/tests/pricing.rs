//! Prices: SPEC.md §2's worked numbers, the reference catalog's recurring amounts, and
//! properties of the price schemes, periods and rounding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc};
use common::reference_catalog as reference;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;
use tollgate_core::catalog::{Tier, TiersMode, UnitScheme};
use tollgate_core::change::{ChangeType, classify};
use tollgate_core::id::{AddonId, CountryCode, FeatureId, PlanId};
use tollgate_core::money::{Currency, RoundingMode};
use tollgate_core::period::{BillingPeriod, PeriodSeries};
use tollgate_core::pricing::{AddonQuantity, Configuration, recurring_amount, scheme_amount};
use tollgate_core::{Catalog, ErrorCode};

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn tier(up_to: Option<u64>, unit: &str, flat: &str) -> Tier {
    Tier::new(up_to, d(unit), d(flat))
}

fn spec_tiers(flats: [&str; 3]) -> Vec<Tier> {
    vec![
        tier(Some(5), "20", flats[0]),
        tier(Some(10), "15", flats[1]),
        tier(None, "10", flats[2]),
    ]
}

fn amount(scheme: &UnitScheme, quantity: u64) -> Decimal {
    scheme_amount(scheme, quantity).unwrap().amount
}

#[test]
fn spec_worked_numbers_hold() {
    let graduated = UnitScheme::Tiered {
        mode: TiersMode::Graduated,
        tiers: spec_tiers(["0", "0", "0"]),
    };
    assert_eq!(amount(&graduated, 20), d("275"));
    let with_flats = UnitScheme::Tiered {
        mode: TiersMode::Graduated,
        tiers: spec_tiers(["10", "8", "5"]),
    };
    assert_eq!(amount(&with_flats, 20), d("298"));
    let volume = UnitScheme::Tiered {
        mode: TiersMode::Volume,
        tiers: spec_tiers(["0", "0", "0"]),
    };
    assert_eq!(amount(&volume, 20), d("200"));
    let package = UnitScheme::Package {
        block_size: 1000,
        unit_price: d("5"),
    };
    assert_eq!(scheme_amount(&package, 500).unwrap().charged_quantity, 1);
    assert_eq!(scheme_amount(&package, 1500).unwrap().charged_quantity, 2);
    assert_eq!(scheme_amount(&package, 1000).unwrap().charged_quantity, 1);
    assert_eq!(amount(&package, 1500), d("10"));
}

/// Volume pricing has a cliff where a cheaper tier starts: it is monotone within a tier, not
/// across one whose unit price drops. ws-plus storage: 100 GB at 0.50 costs more than 101 GB
/// at 0.40.
#[test]
fn volume_pricing_has_cliffs_where_tiers_get_cheaper() {
    let storage = UnitScheme::Tiered {
        mode: TiersMode::Volume,
        tiers: vec![
            tier(Some(100), "0.5", "0"),
            tier(Some(1000), "0.4", "0"),
            tier(None, "0.25", "0"),
        ],
    };
    assert_eq!(amount(&storage, 100), d("50"));
    assert_eq!(amount(&storage, 101), d("40.4"));
}

fn config(plan: &str, version: u32, period: Option<BillingPeriod>) -> Configuration {
    Configuration {
        plan: PlanId::new(plan),
        plan_version: version,
        billing_period: period,
        country: None,
        units: BTreeMap::new(),
        addons: Vec::new(),
    }
}

fn with_units(mut c: Configuration, feature: &str, quantity: u64) -> Configuration {
    c.units.insert(FeatureId::new(feature), quantity);
    c
}

fn with_addon(mut c: Configuration, addon: &str, quantity: u32) -> Configuration {
    c.addons.push(AddonQuantity {
        addon: AddonId::new(addon),
        version: 1,
        quantity,
    });
    c
}

#[test]
fn reference_catalog_recurring_amounts() {
    let catalog = reference();
    let monthly = Some(BillingPeriod::Monthly);
    let total = |c: &Configuration| recurring_amount(&catalog, c).unwrap().total;

    assert_eq!(
        total(&with_units(config("pro", 2, monthly), "seats", 20)),
        d("394")
    );
    // A per-unit price left out of the quantities gets its minimum (1 seat).
    assert_eq!(total(&config("pro", 2, monthly)), d("139"));
    assert_eq!(
        total(&with_units(config("pro", 1, monthly), "seats", 20)),
        d("374")
    );
    assert_eq!(
        total(&with_units(
            config("ws-plus", 1, monthly),
            "storage-gb",
            200
        )),
        d("95")
    );
    assert_eq!(
        total(&with_units(
            config("ws-plus", 1, monthly),
            "storage-gb",
            100
        )),
        d("65")
    );
    assert_eq!(
        total(&with_addon(
            config("starter", 1, monthly),
            "extra-projects",
            3
        )),
        d("59")
    );
    assert_eq!(total(&config("free", 1, None)), d("0"));

    let everything = ["priority-support", "audit-pack", "api-boost"]
        .iter()
        .fold(config("pro", 2, monthly), |c, a| with_addon(c, a, 1));
    let everything = with_addon(everything, "extra-projects", 2);
    let quote = recurring_amount(&catalog, &everything).unwrap();
    assert_eq!(quote.total, d("332"));
    let amounts: Vec<_> = quote.components.iter().map(|c| c.amount).collect();
    assert_eq!(
        amounts,
        [d("119"), d("20"), d("49"), d("25"), d("99"), d("20")]
    );
}

#[test]
fn a_change_of_quantities_alone_is_classified_by_the_quantities() {
    let catalog = reference();
    let monthly = Some(BillingPeriod::Monthly);
    let storage = |gb| with_units(config("ws-plus", 1, monthly), "storage-gb", gb);
    let classify = |from: &Configuration, to: &Configuration| classify(&catalog, from, to).unwrap();
    // Volume tiers make 101 GB cheaper than 100 GB: still more storage, so an upgrade.
    let total = |c: &Configuration| recurring_amount(&catalog, c).unwrap().total;
    assert!(total(&storage(101)) < total(&storage(100)));
    assert_eq!(classify(&storage(100), &storage(101)), ChangeType::Upgrade);
    assert_eq!(
        classify(&storage(101), &storage(100)),
        ChangeType::Downgrade
    );
    // More of an add-on too.
    let projects = |n| with_addon(config("starter", 1, monthly), "extra-projects", n);
    assert_eq!(classify(&projects(1), &projects(3)), ChangeType::Upgrade);
    assert_eq!(classify(&projects(3), &projects(2)), ChangeType::Downgrade);
    // More seats and fewer add-ons is a mixed change: the amounts decide.
    let pro = |seats, extra| {
        with_addon(
            with_units(config("pro", 2, monthly), "seats", seats),
            "extra-projects",
            extra,
        )
    };
    assert_eq!(classify(&pro(2, 1), &pro(3, 2)), ChangeType::Upgrade);
    assert_eq!(classify(&pro(2, 3), &pro(4, 1)), ChangeType::Upgrade);
    assert_eq!(classify(&pro(4, 1), &pro(2, 3)), ChangeType::Downgrade);
    // One seat more for two projects fewer costs the same: neither.
    assert_eq!(classify(&pro(2, 3), &pro(3, 1)), ChangeType::None);
}

/// The reference catalog with its plan `starter` changed by `change`.
fn with_starter(change: impl FnOnce(&mut serde_json::Value)) -> Catalog {
    common::catalog_with(|catalog| {
        let starter = catalog["plans"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["id"] == "starter")
            .unwrap();
        change(starter);
    })
}

/// The reference catalog with `starter` priced in Canada (in USD, below the default set),
/// in France (in EUR, above Germany) and, monthly only, in Switzerland (in CHF).
fn catalog_with_more_countries() -> Catalog {
    with_starter(|starter| {
        let set = |amount: u32, currency: &str| serde_json::json!([{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": amount, "currency": currency}]);
        starter["localizedPrices"]["CA"] = set(19, "USD");
        starter["localizedPrices"]["FR"] = set(30, "EUR");
        starter["localizedPrices"]["CH"] = set(28, "CHF");
    })
}

fn in_country(mut c: Configuration, country: &str) -> Configuration {
    c.country = CountryCode::parse(country);
    c
}

#[test]
fn a_change_is_classified_at_the_prices_it_will_be_billed() {
    let catalog = catalog_with_more_countries();
    let starter = config("starter", 1, Some(BillingPeriod::Monthly));
    let classify = |from: &str, to: &str| {
        classify(
            &catalog,
            &in_country(starter.clone(), from),
            &in_country(starter.clone(), to),
        )
        .unwrap()
    };
    // Billed at 19 USD instead of 29 USD: down, though the default set is the same.
    assert_eq!(classify("US", "CA"), ChangeType::Downgrade);
    assert_eq!(classify("CA", "US"), ChangeType::Upgrade);
    // 27 EUR → 30 EUR.
    assert_eq!(classify("DE", "FR"), ChangeType::Upgrade);
    // Into another currency, the target is re-priced in the current country: 29 USD both.
    assert_eq!(classify("US", "DE"), ChangeType::None);
}

#[test]
fn amounts_in_two_currencies_decide_no_direction() {
    let catalog = catalog_with_more_countries();
    let swiss = |period| in_country(config("starter", 1, Some(period)), "CH");
    let (monthly, annually) = (
        swiss(BillingPeriod::Monthly),
        swiss(BillingPeriod::Annually),
    );
    // Switzerland has no annual price: the default set's, in USD, wherever it is priced.
    assert_eq!(
        recurring_amount(&catalog, &annually)
            .unwrap()
            .currency
            .unwrap()
            .code(),
        "USD"
    );
    assert_eq!(
        classify(&catalog, &monthly, &annually).unwrap(),
        ChangeType::None
    );
    assert_eq!(
        classify(&catalog, &annually, &monthly).unwrap(),
        ChangeType::None
    );
    // The steps before the amounts still decide: `free` → `starter` is an upgrade.
    let free = in_country(config("free", 1, None), "CH");
    assert_eq!(
        classify(&catalog, &free, &annually).unwrap(),
        ChangeType::Upgrade
    );
}

#[test]
fn equal_monthly_amounts_are_decided_by_the_billing_period() {
    // `starter` at 12 × its monthly price a year: the same monthly amount.
    let catalog = with_starter(|starter| {
        starter["prices"] = serde_json::json!([
            {"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": "10", "currency": "USD"},
            {"billingPeriod": "QUARTERLY", "model": "FLAT_FEE", "amount": "30", "currency": "USD"},
            {"billingPeriod": "ANNUALLY", "model": "FLAT_FEE", "amount": "120", "currency": "USD"}
        ]);
        starter["localizedPrices"] = serde_json::json!({});
    });
    let starter = |period| config("starter", 1, Some(period));
    let (monthly, quarterly, annually) = (
        starter(BillingPeriod::Monthly),
        starter(BillingPeriod::Quarterly),
        starter(BillingPeriod::Annually),
    );
    let total = |c: &Configuration| recurring_amount(&catalog, c).unwrap().total;
    assert_eq!(total(&annually), d("120"));
    // SPEC.md §3: on equal monthly amounts the longer billing period is the upgrade.
    let classify = |from: &Configuration, to: &Configuration| classify(&catalog, from, to).unwrap();
    assert_eq!(classify(&monthly, &annually), ChangeType::Upgrade);
    assert_eq!(classify(&annually, &monthly), ChangeType::Downgrade);
    assert_eq!(classify(&monthly, &quarterly), ChangeType::Upgrade);
    assert_eq!(classify(&annually, &quarterly), ChangeType::Downgrade);
    assert_eq!(classify(&quarterly, &quarterly), ChangeType::None);
}

#[test]
fn localized_prices_fall_back_to_the_default_set() {
    let catalog = reference();
    let mut de = config("starter", 1, Some(BillingPeriod::Monthly));
    de.country = CountryCode::parse("DE");
    let quote = recurring_amount(&catalog, &de).unwrap();
    assert_eq!(
        (quote.total, quote.currency.unwrap().code()),
        (d("27"), "EUR")
    );
    let mut fr = de.clone();
    fr.country = CountryCode::parse("FR");
    let quote = recurring_amount(&catalog, &fr).unwrap();
    assert_eq!(
        (quote.total, quote.currency.unwrap().code()),
        (d("29"), "USD")
    );
    // pro has no DE prices: the default set applies.
    let mut pro = config("pro", 2, Some(BillingPeriod::Monthly));
    pro.country = CountryCode::parse("DE");
    assert_eq!(
        recurring_amount(&catalog, &pro)
            .unwrap()
            .currency
            .unwrap()
            .code(),
        "USD"
    );
}

#[test]
fn add_ons_priced_in_another_currency_are_refused() {
    let catalog = reference();
    let mut de = with_addon(
        config("starter", 1, Some(BillingPeriod::Monthly)),
        "extra-projects",
        1,
    );
    de.country = CountryCode::parse("DE");
    let err = recurring_amount(&catalog, &de).unwrap_err();
    assert_eq!(err.code(), ErrorCode::CurrencyMismatch);
}

#[test]
fn pricing_errors_carry_their_codes() {
    let catalog = reference();
    let code = |c: &Configuration| recurring_amount(&catalog, c).unwrap_err().code();
    assert_eq!(
        code(&config("starter", 1, None)),
        ErrorCode::BillingPeriodMissingError
    );
    assert_eq!(
        code(&config("starter", 1, Some(BillingPeriod::Quarterly))),
        ErrorCode::BillingPeriodMissingError
    );
    assert_eq!(
        code(&config("pro", 3, Some(BillingPeriod::Monthly))),
        ErrorCode::PlanNotFound
    );
    assert_eq!(
        code(&config("nope", 1, Some(BillingPeriod::Monthly))),
        ErrorCode::PlanNotFound
    );
    let too_many = with_units(
        config("pro", 2, Some(BillingPeriod::Monthly)),
        "seats",
        1001,
    );
    assert_eq!(code(&too_many), ErrorCode::InvalidQuantity);
    let too_few = with_units(
        config("ws-plus", 1, Some(BillingPeriod::Monthly)),
        "storage-gb",
        9,
    );
    assert_eq!(code(&too_few), ErrorCode::InvalidQuantity);
    let api_boost_annual = with_addon(
        config("pro", 2, Some(BillingPeriod::Annually)),
        "api-boost",
        1,
    );
    assert_eq!(
        code(&api_boost_annual),
        ErrorCode::BillingPeriodMissingError
    );
    let unknown_addon = with_addon(config("pro", 2, Some(BillingPeriod::Monthly)), "nope", 1);
    assert_eq!(code(&unknown_addon), ErrorCode::AddonNotFound);
}

#[test]
fn monthly_normalization_divides_by_the_period() {
    let catalog = reference();
    let annual = recurring_amount(
        &catalog,
        &config("starter", 1, Some(BillingPeriod::Annually)),
    )
    .unwrap();
    assert_eq!(annual.monthly().unwrap() * d("12"), d("290"));
    let monthly = recurring_amount(
        &catalog,
        &config("starter", 1, Some(BillingPeriod::Monthly)),
    )
    .unwrap();
    assert_eq!(monthly.monthly().unwrap(), d("29"));
}

fn price() -> impl Strategy<Value = Decimal> {
    (0u64..100_000, 0u32..5)
        .prop_map(|(mantissa, scale)| Decimal::new(i64::try_from(mantissa).unwrap(), scale))
}

/// Tier lists with strictly increasing bounds and an unbounded last tier.
fn tiers() -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::vec((1u64..50, price(), price()), 1..5).prop_map(|raw| {
        let last = raw.len() - 1;
        let mut bound = 0;
        raw.into_iter()
            .enumerate()
            .map(|(i, (width, unit, flat))| {
                bound += width;
                Tier::new((i < last).then_some(bound), unit, flat)
            })
            .collect()
    })
}

/// The tier containing unit number `k` (1-based) and its position.
fn tier_of(tiers: &[Tier], k: u64) -> usize {
    tiers
        .iter()
        .position(|t| t.up_to.is_none_or(|up| k <= up))
        .unwrap()
}

proptest! {
    /// Graduated pricing is the sum of its tiers: each unit priced by the tier it falls in,
    /// plus the flat fee of every tier reached.
    #[test]
    fn graduated_is_the_sum_of_its_tiers(tiers in tiers(), quantity in 0u64..300) {
        let mut expected = Decimal::ZERO;
        let mut reached = vec![false; tiers.len()];
        for k in 1..=quantity {
            let i = tier_of(&tiers, k);
            expected += tiers[i].unit_price;
            reached[i] = true;
        }
        for (i, r) in reached.iter().enumerate() {
            if *r { expected += tiers[i].flat_price; }
        }
        let scheme = UnitScheme::Tiered { mode: TiersMode::Graduated, tiers };
        prop_assert_eq!(amount(&scheme, quantity), expected);
    }

    #[test]
    fn graduated_is_monotone_in_quantity(tiers in tiers(), a in 0u64..300, b in 0u64..300) {
        let scheme = UnitScheme::Tiered { mode: TiersMode::Graduated, tiers };
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(amount(&scheme, lo) <= amount(&scheme, hi));
    }

    /// Volume pricing prices every unit at the tier containing the quantity; it is monotone
    /// within a tier, and across tiers whenever the next tier never charges less than the
    /// previous one could (no cliff).
    #[test]
    fn volume_prices_every_unit_at_one_tier_and_is_monotone_without_cliffs(
        tiers in tiers(), a in 1u64..300, b in 1u64..300,
    ) {
        let scheme = UnitScheme::Tiered { mode: TiersMode::Volume, tiers: tiers.clone() };
        let (lo, hi) = (a.min(b), a.max(b));
        let t = &tiers[tier_of(&tiers, hi)];
        prop_assert_eq!(amount(&scheme, hi), t.unit_price * Decimal::from(hi) + t.flat_price);
        let same_tier = tier_of(&tiers, lo) == tier_of(&tiers, hi);
        let no_cliffs = tiers.windows(2).all(|w| match w[0].up_to {
            Some(up) => w[1].unit_price * Decimal::from(up + 1) + w[1].flat_price
                >= w[0].unit_price * Decimal::from(up) + w[0].flat_price
                && w[1].unit_price >= w[0].unit_price,
            None => true,
        });
        if same_tier || no_cliffs {
            prop_assert!(amount(&scheme, lo) <= amount(&scheme, hi));
        }
    }

    #[test]
    fn package_charges_whole_blocks(block in 1u64..1000, quantity in 0u64..100_000, unit in price()) {
        let scheme = UnitScheme::Package { block_size: block, unit_price: unit };
        let charged = scheme_amount(&scheme, quantity).unwrap();
        prop_assert!(charged.charged_quantity * block >= quantity);
        prop_assert!(quantity == 0 || (charged.charged_quantity - 1) * block < quantity);
        prop_assert_eq!(charged.amount, unit * Decimal::from(charged.charged_quantity));
    }

    /// Rounding gives exactly the currency's minor units and moves by at most half a unit.
    #[test]
    fn rounding_gives_the_currency_minor_units(
        mantissa in any::<i64>(), scale in 0u32..12,
        code in prop::sample::select(vec!["USD", "JPY", "KWD", "CLF", "EUR"]),
        half_even in any::<bool>(),
    ) {
        let value = Decimal::new(mantissa, scale);
        let currency = Currency::parse(code).unwrap();
        let mode = if half_even { RoundingMode::HalfEven } else { RoundingMode::HalfUp };
        let rounded = currency.round(value, mode);
        prop_assert_eq!(rounded.scale(), currency.minor_units());
        let half_unit = Decimal::new(5, currency.minor_units() + 1);
        prop_assert!((rounded - value).abs() <= half_unit);
    }
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 1990..2090, at any second; month ends are frequent enough at day granularity.
    (1990i32..2090, 1u32..=12, 1u32..=31, 0i64..86_400).prop_map(|(y, m, day, secs)| {
        let last = (28..=31)
            .rev()
            .find(|&dd| Utc.with_ymd_and_hms(y, m, dd, 0, 0, 0).single().is_some())
            .unwrap();
        Utc.with_ymd_and_hms(y, m, day.min(last), 0, 0, 0).unwrap() + TimeDelta::seconds(secs)
    })
}

fn billing_period() -> impl Strategy<Value = BillingPeriod> {
    prop::sample::select(vec![
        BillingPeriod::Monthly,
        BillingPeriod::Quarterly,
        BillingPeriod::Annually,
    ])
}

proptest! {
    /// Consecutive periods share their boundary (no gap, no overlap) and every start keeps
    /// the anchor's day of month, or the month's last day when the month is shorter.
    #[test]
    fn anchored_periods_tile_time_and_never_drift(anchor in instant(), period in billing_period(), n in 0u32..240) {
        let series = PeriodSeries::new(anchor, period);
        let this = series.nth(n).unwrap();
        let next = series.nth(n + 1).unwrap();
        prop_assert_eq!(this.end, next.start);
        prop_assert!(this.start < this.end);
        prop_assert_eq!(this.start.time(), anchor.time());
        let start = this.start;
        let days_in_month = (28..=31u32).rev()
            .find(|&dd| start.with_day(dd).is_some())
            .unwrap();
        prop_assert_eq!(start.day(), anchor.day().min(days_in_month));
    }

    /// Every instant at or after the anchor lies in exactly the period `containing` returns,
    /// and that period is one of the series.
    #[test]
    fn containing_finds_the_period_of_any_instant(anchor in instant(), period in billing_period(), offset in 0i64..(40 * 366 * 86_400)) {
        let series = PeriodSeries::new(anchor, period);
        let t = anchor + TimeDelta::seconds(offset);
        let n = series.index_of(t).unwrap().unwrap();
        let p = series.nth(n).unwrap();
        prop_assert!(p.contains(t));
        prop_assert_eq!(series.containing(t).unwrap(), Some(p));
        prop_assert!(!series.nth(n + 1).unwrap().contains(t));
        prop_assert!(n == 0 || !series.nth(n - 1).unwrap().contains(t));
    }
}

#[test]
fn project_example_catalog_loads_and_prices() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/catalog.json");
    let catalog = Catalog::from_json(&std::fs::read(path).unwrap()).unwrap();
    let monthly = Some(BillingPeriod::Monthly);
    // 90 flat + graduated members: 10 × 8 + 2 × 6 = 92; the usage price is billed in arrears.
    let scale = with_units(config("scale", 1, monthly), "team-members", 12);
    assert_eq!(recurring_amount(&catalog, &scale).unwrap().total, d("182"));
    let mut growth_gb = with_units(config("growth", 1, monthly), "team-members", 3);
    growth_gb.country = CountryCode::parse("GB");
    let quote = recurring_amount(&catalog, &growth_gb).unwrap();
    assert_eq!(
        (quote.total, quote.currency.unwrap().code()),
        (d("38"), "GBP")
    );
}
