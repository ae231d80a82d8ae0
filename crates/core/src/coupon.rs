//! Coupons and promotion codes: which discount a subscription gets, and for how long.

use std::collections::BTreeMap;

/// How many times each promotion code has been redeemed, across all customers. A promotion
/// code's `maxRedemptions` is global, so the host keeps these counts and hands them to
/// every decision that may redeem a code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redemptions(BTreeMap<String, u64>);

impl Redemptions {
    /// No code redeemed yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `code` has been redeemed.
    #[must_use]
    pub fn count(&self, code: &str) -> u64 {
        self.0.get(code).copied().unwrap_or(0)
    }

    /// Records one more redemption of `code`.
    pub fn record(&mut self, code: &str) {
        let count = self.0.entry(code.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
    }
}
