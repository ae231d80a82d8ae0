//! The `entitlement_merge` target: the laws of the generous merge (SPEC.md §6), on
//! candidates built directly and on customer states built from provisioned subscriptions.
//!
//! For sources `A`, `B`, `C` of one reference-catalog feature (values of every type, so
//! mismatched ones are ignored): the merge is commutative, associative and idempotent,
//! merging two merges is merging all their sources, the source order does not matter, and
//! adding sources never lowers access: the merged value of `A ∪ B` is at least as generous as
//! that of `A` (booleans grant, numbers are at least as large, enum values a superset,
//! metered values compared as FORMAT.md §6 orders them: unlimited, larger limit, soft before
//! hard, more frequent reset; the same order `crates/core/tests/entitlement.rs` writes down).
//!
//! For states: ending one subscription answers every check of every scope exactly as never
//! having had it, and adding a subscription or a promotional grant never lowers access.

use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::OnceLock;
use tollgate_core::Catalog;
use tollgate_core::catalog::{EntitlementValue, ResetAnchor, ResetPeriod, UsageLimit};
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::entitlement::{
    Candidate, EntitlementSet, MergedEntitlement, SourceKind, grant_promotional_entitlement,
    metered_value,
};
use tollgate_core::id::{CustomerId, ResourceId, SubscriptionId};
use tollgate_core::pricing::AddonQuantity;
use tollgate_core::provision::provision;
use tollgate_core::settings::Settings;
use tollgate_core::subscription::{CancelReason, Subscription};

fuzz_enum! {
    /// A feature of the reference catalog, one of each type (metered twice).
    pub enum FeatureChoice {
        Sso,
        Projects,
        ApiCalls,
        Seats,
        Region,
    }
}

impl FeatureChoice {
    fn id(&self) -> &'static str {
        match self {
            Self::Sso => "sso",
            Self::Projects => "projects",
            Self::ApiCalls => "api-calls",
            Self::Seats => "seats",
            Self::Region => "region",
        }
    }
}

fuzz_enum! {
    /// An entitlement value of any type.
    pub enum Val {
        Boolean(bool),
        Numeric(u16),
        Metered(Option<u16>, bool, Option<u8>, u8),
        Enum(u8),
    }
}

const PERIODS: [ResetPeriod; 5] = [
    ResetPeriod::Hour,
    ResetPeriod::Day,
    ResetPeriod::Week,
    ResetPeriod::Month,
    ResetPeriod::Year,
];
const ANCHORS: [ResetAnchor; 9] = [
    ResetAnchor::SubscriptionStart,
    ResetAnchor::StartOfTheMonth,
    ResetAnchor::EveryMonday,
    ResetAnchor::EveryTuesday,
    ResetAnchor::EveryWednesday,
    ResetAnchor::EveryThursday,
    ResetAnchor::EveryFriday,
    ResetAnchor::EverySaturday,
    ResetAnchor::EverySunday,
];

impl Val {
    fn value(&self) -> EntitlementValue {
        match self {
            Self::Boolean(granted) => EntitlementValue::Boolean { granted: *granted },
            Self::Numeric(n) => EntitlementValue::Numeric {
                value: u64::from(*n),
            },
            Self::Metered(limit, soft, period, anchor) => metered_value(
                limit.map_or(UsageLimit::Unlimited, |n| UsageLimit::Limited(u64::from(n))),
                *soft,
                period.map(|p| PERIODS[usize::from(p) % PERIODS.len()]),
                ANCHORS[usize::from(*anchor) % ANCHORS.len()],
            ),
            Self::Enum(mask) => EntitlementValue::Enum {
                values: ["us", "eu", "apac", "mars"]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, v)| (*v).to_owned())
                    .collect(),
            },
        }
    }
}

fuzz_struct! {
    /// One source's value: its subscription (or a promotional grant), kind, id and anchor.
    pub struct Cand {
        pub subscription: u8,
        pub kind: u8,
        pub id: u8,
        pub value: Val,
        pub anchored: u8,
    }
}

const KINDS: [SourceKind; 5] = [
    SourceKind::Plan,
    SourceKind::Trial,
    SourceKind::Addon,
    SourceKind::Price,
    SourceKind::Promotional,
];

fn at(hours: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600 + i64::from(hours) * 3600, 0).expect("in range")
}

impl Cand {
    fn candidate(&self) -> Candidate {
        let subscription = ["s1", "s2", "s3"]
            .get(usize::from(self.subscription % 4))
            .map(|s| SubscriptionId::new(*s));
        Candidate::new(
            subscription,
            KINDS[usize::from(self.kind) % KINDS.len()],
            ["a", "b"][usize::from(self.id % 2)],
            self.value.value(),
            at(u32::from(self.anchored % 4) * 100),
        )
    }
}

fuzz_struct! {
    /// A subscription cloned from a provisioned template: its kind, resource and add-ons.
    pub struct SubSpec {
        pub template: u8,
        pub resource: u8,
        pub addons: u8,
        pub quantity: u8,
    }
}

fuzz_struct! {
    /// A customer's subscriptions, the one to end, and a grant to add.
    pub struct StateInput {
        pub subscriptions: [Option<SubSpec>; 4],
        pub end: u8,
        pub extra: SubSpec,
        pub grant: u8,
        pub hours: u8,
    }
}

fuzz_struct! {
    /// The whole input.
    pub struct Input {
        pub feature: FeatureChoice,
        pub a: [Option<Cand>; 4],
        pub b: [Option<Cand>; 3],
        pub c: [Option<Cand>; 3],
        pub state: Option<StateInput>,
    }
}

/// Metered values in FORMAT.md §6 order: (unlimited, larger limit, soft before hard, more
/// frequent reset), written independently of the library's own order.
fn metered_rank(value: &EntitlementValue) -> Option<(bool, u64, bool, u8)> {
    let EntitlementValue::Metered {
        limit,
        soft_limit,
        reset,
    } = value
    else {
        return None;
    };
    let (unlimited, n) = match limit {
        UsageLimit::Unlimited => (true, 0),
        UsageLimit::Limited(n) => (false, *n),
    };
    let frequency = match reset.map(|r| r.period) {
        None => 0,
        Some(ResetPeriod::Year) => 1,
        Some(ResetPeriod::Month) => 2,
        Some(ResetPeriod::Week) => 3,
        Some(ResetPeriod::Day) => 4,
        Some(ResetPeriod::Hour) => 5,
    };
    Some((unlimited, n, *soft_limit, frequency))
}

/// Whether `more` gives at least what `less` gives.
fn at_least_as_generous(more: &EntitlementValue, less: &EntitlementValue) -> bool {
    match (more, less) {
        (EntitlementValue::Boolean { granted: a }, EntitlementValue::Boolean { granted: b }) => {
            *a || !*b
        }
        (EntitlementValue::Numeric { value: a }, EntitlementValue::Numeric { value: b }) => a >= b,
        (EntitlementValue::Enum { values: a }, EntitlementValue::Enum { values: b }) => {
            b.iter().all(|v| a.contains(v))
        }
        (a, b) => match (metered_rank(a), metered_rank(b)) {
            (Some(x), Some(y)) => x >= y,
            _ => false,
        },
    }
}

fn candidates(cands: &[Option<Cand>]) -> Vec<Candidate> {
    cands.iter().flatten().map(Cand::candidate).collect()
}

impl Cand {
    /// The source it claims to be: two candidates with one key are one source given twice,
    /// of which the merge keeps one.
    fn key(&self) -> (u8, u8, u8) {
        (self.subscription % 4, self.kind % 5, self.id % 2)
    }
}

fn laws(catalog: &Catalog, input: &Input) {
    let feature = catalog
        .feature(input.feature.id())
        .expect("a reference feature");
    let (a, b, c) = (
        candidates(&input.a),
        candidates(&input.b),
        candidates(&input.c),
    );
    let all_ab: Vec<Candidate> = a.iter().chain(&b).cloned().collect();
    // Sources of `B` that `A` lacks: adding them must not lower what `A` gives. (A value
    // for a source `A` already has is not a new source: one subscription has one value.)
    let keys_a: Vec<(u8, u8, u8)> = input.a.iter().flatten().map(Cand::key).collect();
    let new_in_b: Vec<Candidate> = input
        .b
        .iter()
        .flatten()
        .filter(|x| !keys_a.contains(&x.key()))
        .map(Cand::candidate)
        .collect();
    let added = MergedEntitlement::merge_all(feature, a.iter().chain(&new_in_b).cloned());
    let merged_ab = MergedEntitlement::merge_all(feature, all_ab.clone());
    let mut reversed = all_ab.clone();
    reversed.reverse();
    assert_eq!(
        MergedEntitlement::merge_all(feature, reversed),
        merged_ab,
        "the source order changed the merge"
    );
    let (ma, mb, mc) = (
        MergedEntitlement::merge_all(feature, a),
        MergedEntitlement::merge_all(feature, b),
        MergedEntitlement::merge_all(feature, c),
    );
    if let Some(ma) = &ma {
        assert_eq!(&ma.merge(ma, feature), ma, "the merge is not idempotent");
        if let Some(ab) = &added {
            assert!(
                at_least_as_generous(ab.value(), ma.value()),
                "adding sources lowered {:?} to {:?}",
                ma.value(),
                ab.value()
            );
            assert!(!ma.grants() || ab.grants(), "adding sources revoked access");
        }
    }
    if let (Some(ma), Some(mb)) = (&ma, &mb) {
        assert_eq!(
            ma.merge(mb, feature),
            mb.merge(ma, feature),
            "the merge is not commutative"
        );
        assert_eq!(
            Some(ma.merge(mb, feature)),
            merged_ab,
            "merging two merges is not the merge of all their sources"
        );
        if let Some(mc) = &mc {
            assert_eq!(
                ma.merge(mb, feature).merge(mc, feature),
                ma.merge(&mb.merge(mc, feature), feature),
                "the merge is not associative"
            );
        }
    }
}

/// Subscriptions provisioned once; states clone and vary them.
fn templates(catalog: &Catalog) -> &'static [Subscription] {
    static TEMPLATES: OnceLock<Vec<Subscription>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let inputs = [
            json!({"planId": "free"}),
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true}),
            json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true,
                   "billableFeatures": [{"featureId": "seats", "quantity": 3}]}),
            json!({"planId": "pro", "billingPeriod": "MONTHLY",
                   "trialOverride": {"isTrial": true, "trialEndDate": "2025-02-01T00:00:00Z"}}),
            json!({"planId": "ws-basic", "resourceId": "ws-1"}),
            json!({"planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "ws-1",
                   "billableFeatures": [{"featureId": "storage-gb", "quantity": 20}]}),
            json!({"planId": "enterprise", "skipTrial": true}),
        ];
        inputs
            .into_iter()
            .map(|mut input| {
                input["customerId"] = json!("c1");
                input["subscriptionId"] = json!("t");
                let request = serde_json::from_value(input).expect("a provision request");
                let mut state = CustomerState::new(Customer::new(CustomerId::new("c1")));
                state.customer.has_payment_method = true;
                let decision = provision(
                    catalog,
                    &state,
                    &request,
                    &Redemptions::new(),
                    at(0),
                    &Settings::default(),
                )
                .expect("the template provisions");
                decision.apply(&mut state, at(0));
                state
                    .subscription("t")
                    .expect("the template exists")
                    .clone()
            })
            .collect()
    })
}

const RESOURCES: [&str; 2] = ["ws-1", "ws-2"];
const ADDONS: [&str; 4] = [
    "extra-projects",
    "priority-support",
    "api-boost",
    "audit-pack",
];
const FEATURES: [&str; 10] = [
    "sso",
    "audit-log",
    "priority-support",
    "seats",
    "api-calls",
    "storage-gb",
    "projects",
    "retention-days",
    "region",
    "teleport",
];

fn subscription(catalog: &Catalog, spec: &SubSpec, n: usize) -> Subscription {
    let templates = templates(catalog);
    let mut sub = templates[usize::from(spec.template) % templates.len()].clone();
    sub.id = SubscriptionId::new(format!("s{n}"));
    if sub.resource.is_some() {
        sub.resource = Some(ResourceId::new(RESOURCES[usize::from(spec.resource % 2)]));
    } else {
        sub.config.addons = ADDONS
            .iter()
            .enumerate()
            .filter(|(i, _)| spec.addons & (1 << i) != 0)
            .map(|(i, a)| AddonQuantity {
                addon: (*a).into(),
                version: 1,
                quantity: if i == 0 {
                    1 + u32::from(spec.quantity % 5)
                } else {
                    1
                },
            })
            .collect();
    }
    sub
}

fn state(catalog: &Catalog, subs: &[(usize, &SubSpec)]) -> CustomerState {
    let mut state = CustomerState::new(Customer::new(CustomerId::new("c1")));
    state
        .resources
        .extend(RESOURCES.iter().map(|r| ResourceId::new(*r)));
    state.subscriptions = subs
        .iter()
        .map(|(n, spec)| subscription(catalog, spec, *n))
        .collect();
    state
}

/// Every answer of every scope, as JSON.
fn answers(catalog: &Catalog, state: &CustomerState, now: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    for resource in [None, Some("ws-1"), Some("ws-2"), Some("ws-9")] {
        let resource = resource.map(ResourceId::new);
        let set = EntitlementSet::for_customer(catalog, state, resource.as_ref(), now);
        for feature in FEATURES {
            out.push(set.get(feature).to_json().to_string());
        }
    }
    out
}

fn state_laws(catalog: &Catalog, input: &StateInput) {
    let now = at(u32::from(input.hours));
    let numbered: Vec<(usize, &SubSpec)> =
        input.subscriptions.iter().flatten().enumerate().collect();
    if !numbered.is_empty() {
        let end = usize::from(input.end) % numbered.len();
        let mut ended = state(catalog, &numbered);
        ended.subscriptions[end].end(at(0), CancelReason::Immediate);
        let without: Vec<(usize, &SubSpec)> = numbered
            .iter()
            .filter(|(n, _)| *n != end)
            .copied()
            .collect();
        assert_eq!(
            answers(catalog, &ended, now),
            answers(catalog, &state(catalog, &without), now),
            "ending subscription s{end} is not the same as never having it"
        );
    }
    let before = state(catalog, &numbered);
    let mut more = numbered.clone();
    more.push((99, &input.extra));
    let mut after = state(catalog, &more);
    let grant = [
        json!({"customerId": "c1", "featureId": "projects", "value": 4}),
        json!({"customerId": "c1", "featureId": "api-calls", "usageLimit": 10, "resetPeriod": "DAY"}),
        json!({"customerId": "c1", "featureId": "region", "values": ["apac"]}),
        json!({"customerId": "c1", "featureId": "sso", "granted": true}),
        json!({"customerId": "c1", "featureId": "seats", "hasUnlimitedUsage": true}),
    ][usize::from(input.grant) % 5]
        .clone();
    let request = serde_json::from_value(grant).expect("a grant request");
    grant_promotional_entitlement(catalog, &mut after, &request, at(0)).expect("the grant applies");
    for resource in [None, Some("ws-1"), Some("ws-2")] {
        let resource = resource.map(ResourceId::new);
        let less = EntitlementSet::for_customer(catalog, &before, resource.as_ref(), now);
        let more = EntitlementSet::for_customer(catalog, &after, resource.as_ref(), now);
        for feature in FEATURES {
            let (l, m) = (less.get(feature), more.get(feature));
            assert!(
                !l.has_access() || m.has_access(),
                "{feature} in {resource:?} lost access"
            );
            if let (Some(x), Some(y)) = (l.merged(), m.merged()) {
                assert!(
                    at_least_as_generous(y.value(), x.value()),
                    "{feature} in {resource:?} went from {:?} to {:?}",
                    x.value(),
                    y.value()
                );
            }
        }
    }
}

/// The reference catalog.
fn reference() -> &'static Catalog {
    static LOADED: OnceLock<Catalog> = OnceLock::new();
    LOADED.get_or_init(|| {
        Catalog::from_json(include_bytes!(
            "../../crates/core/tests/data/reference-catalog.json"
        ))
        .expect("the reference catalog loads")
    })
}

/// Checks the laws on the input.
pub fn exercise(input: &Input) {
    let catalog = reference();
    laws(catalog, input);
    if let Some(state) = &input.state {
        state_laws(catalog, state);
    }
}
