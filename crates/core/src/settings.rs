//! Settings of the environment a decision runs in, validated once when built.

use crate::money::RoundingMode;
use crate::proration::ProrationPolicy;
use crate::subscription::PaymentCollectionMethod;

/// How the host bills: whether a billing provider is connected, its proration convention and
/// its rounding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Settings {
    /// Whether a billing provider is connected: without one, payment is never required and
    /// no invoice is written (amounts are still computed for estimates).
    pub billing_integration: bool,
    /// The proration convention.
    pub proration: ProrationPolicy,
    /// How invoice lines are rounded.
    pub rounding: RoundingMode,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            billing_integration: true,
            proration: ProrationPolicy::Stripe,
            rounding: RoundingMode::HalfUp,
        }
    }
}

impl Settings {
    /// Settings with the given parts.
    #[must_use]
    pub fn new(
        billing_integration: bool,
        proration: ProrationPolicy,
        rounding: RoundingMode,
    ) -> Self {
        Self {
            billing_integration,
            proration,
            rounding,
        }
    }

    /// Whether the billing provider charges a subscription collected by `method`: only then
    /// does starting it need a payment method (SPEC.md §3 P).
    #[must_use]
    pub fn charges(&self, method: PaymentCollectionMethod) -> bool {
        self.billing_integration && method == PaymentCollectionMethod::Charge
    }

    /// Whether invoices are written for a subscription collected by `method` (FORMAT.md §6:
    /// integration on, `CHARGE` or `INVOICE`); otherwise money is still computed.
    #[must_use]
    pub fn writes_invoices(&self, method: PaymentCollectionMethod) -> bool {
        self.billing_integration && method != PaymentCollectionMethod::None
    }
}
