//! Stable error codes (FORMAT.md §4–5) and the error type every decision returns.

use std::fmt;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// A stable, machine-readable error code. The string form is the variant name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// The code as written in JSON output and in `tollgate check` lines.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name),)*
                }
            }
        }
    };
}

error_codes! {
    /// Malformed JSON, wrong JSON type, unknown key, duplicate key, unknown enum value.
    BadUserInput,
    /// An amount beyond what a decimal holds, or arithmetic that overflowed.
    AmountTooLarge,
    /// A reference to a product, plan, add-on, feature or coupon that does not exist.
    UnknownReference,
    /// A cycle in plan inheritance.
    PlansCircularDependencyError,
    /// A cycle in add-on dependencies.
    AddonsCircularDependencyError,
    /// Two catalog entries with one id (plans and add-ons: one id and version).
    DuplicateId,
    /// A currency code that is not ISO 4217.
    UnknownCurrency,
    /// Two currencies where one is required.
    CurrencyMismatch,
    /// Tiers empty, `upTo` not strictly increasing, or a bounded last tier.
    InvalidTiers,
    /// A price that cannot be charged as written.
    InvalidPrice,
    /// A trial on a free plan, or a duration below 1.
    InvalidTrial,
    /// An entitlement that does not fit its feature.
    InvalidEntitlement,
    /// A feature that cannot be used as declared.
    InvalidFeature,
    /// An add-on that cannot be sold as declared.
    InvalidAddon,
    /// A plan whose parent belongs to another product.
    InvalidPlan,
    /// `minUnitQuantity` above `maxUnitQuantity`, or a bound below 0.
    InvalidQuantityBounds,
    /// A customer-journey setting that points at an unusable plan.
    InvalidJourney,
    /// A coupon that cannot be applied as declared.
    InvalidCoupon,
    /// A catalog that does not load; the message lists its problems.
    CatalogInvalid,
    /// Unknown customer.
    CustomerNotFound,
    /// The customer is archived.
    CustomerIsArchived,
    /// Unknown plan or plan version.
    PlanNotFound,
    /// Unknown add-on.
    AddonNotFound,
    /// Unknown feature.
    FeatureNotFound,
    /// Unknown subscription.
    SubscriptionNotFound,
    /// Unknown coupon.
    CouponNotFound,
    /// `resourceId` missing on a multi-subscription product, or given on a single one.
    ResourceIdMismatch,
    /// A paid plan without a billing period, or none priced.
    BillingPeriodMissingError,
    /// The add-on is not compatible with the plan.
    IncompatibleSubscriptionAddon,
    /// An add-on dependency is missing.
    AddonDependencyMissingError,
    /// An add-on quantity above its `maxQuantity`.
    AddonQuantityExceedsLimitError,
    /// The same add-on twice in one request.
    DuplicateAddonProvisionedError,
    /// A quantity out of bounds or not positive.
    InvalidQuantity,
    /// Unknown promotion code.
    PromotionCodeNotFound,
    /// The promotion code is outside its active window.
    PromotionCodeNotActive,
    /// The promotion code is restricted to other customers.
    PromotionCodeNotForCustomer,
    /// The promotion code is restricted to other plans.
    PromotionCodeNotForPlan,
    /// The promotion code is for first purchases only.
    PromotionCodeCustomerNotFirstPurchase,
    /// The promotion code has been redeemed its maximum number of times.
    PromotionCodeMaxRedemptionsReached,
    /// The amount is below the promotion code's minimum.
    PromotionCodeMinimumAmountNotReached,
    /// The coupon has no amount in the subscription's currency.
    CouponCurrencyMismatch,
    /// Payment is needed, the customer has no payment method and no checkout was offered.
    PaymentMethodNotFound,
    /// A trial was requested on a free plan.
    TrialNotApplicable,
    /// The subscription is already canceled or expired.
    SubscriptionAlreadyCanceledOrExpired,
    /// A cancellation date that cannot be used.
    InvalidCancellationDate,
    /// The subscription is already on the latest plan version.
    SubscriptionAlreadyOnLatestPlanError,
    /// The operation is not allowed in the subscription's status.
    InvalidSubscriptionStatus,
    /// A date out of range or an argument that cannot be used.
    InvalidArgumentError,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of a decision: a stable code and a human message.
///
/// Messages are lowercase, without a trailing period, with user input in backticks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    /// An error with `code` and `message`.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Shorthand for results whose error is an [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
