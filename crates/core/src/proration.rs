//! Proration: the fraction of a span that remains after an instant, under the billing
//! provider's convention.
//!
//! One function, [`share`], serves every path (plan changes, updates, cancellations,
//! estimates). For a change at `t` inside a span `[from, end)` it gives
//! `measure(t, end) / measure(from, end)`, clamped to `[0, 1]`, where the measure is:
//! - `STRIPE`: exact seconds;
//! - `KILL_BILL`: whole local days (half-open), the fraction rounded half up to 9 places;
//! - `THIRTY_DAY`: local days by the 30/360 rule
//!   (`360 × Δyears + 30 × Δmonths + min(d2, 30) − min(d1, 30)`);
//! - `LAGO`: the local calendar dates touched by the span, both ends included; the change
//!   day is billed to the new configuration, and a cancellation counts it as used.
//!
//! The fraction is exact, a [`Fraction`] of two whole numbers (only `KILL_BILL` rounds it).
//! A prorated amount, [`Fraction::of`], is the exact product rounded once to the minor
//! unit, so a product exactly halfway between two minor units is a true tie for the
//! rounding mode.

use crate::error::{Error, ErrorCode};
use crate::money::{self, Currency, RoundingMode};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A billing provider's proration convention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProrationPolicy {
    /// Exact seconds.
    #[default]
    Stripe,
    /// Whole days in the customer's zone, half-open; fraction rounded half up to 9 places.
    KillBill,
    /// Calendar dates touched, both ends included; partial days count whole.
    Lago,
    /// 30-day months (30/360).
    ThirtyDay,
}

/// What the prorated instant is: LAGO bills the change day to the new configuration but
/// counts a cancellation day as used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProrationEvent {
    /// A change of configuration.
    Change,
    /// A cancellation.
    Cancellation,
}

/// The fraction of `[from, end)` that remains at `t`, in `[0, 1]`, as a decimal (28
/// significant digits). Amounts are prorated with [`share`], which keeps it exact.
///
/// # Errors
/// `InvalidArgumentError` for a span that ends before it starts; `AmountTooLarge` on
/// overflow.
pub fn fraction(
    policy: ProrationPolicy,
    zone: Tz,
    from: DateTime<Utc>,
    t: DateTime<Utc>,
    end: DateTime<Utc>,
    event: ProrationEvent,
) -> Result<Decimal, Error> {
    share(policy, zone, from, t, end, event)?.to_decimal()
}

/// The exact fraction of `[from, end)` that remains at `t`, in `[0, 1]`: what [`fraction`]
/// gives, as a ratio of two whole numbers.
///
/// # Errors
/// `InvalidArgumentError` for a span that ends before it starts.
pub fn share(
    policy: ProrationPolicy,
    zone: Tz,
    from: DateTime<Utc>,
    t: DateTime<Utc>,
    end: DateTime<Utc>,
    event: ProrationEvent,
) -> Result<Fraction, Error> {
    if end < from {
        return Err(Error::new(
            ErrorCode::InvalidArgumentError,
            format!("span `{from}`..`{end}` ends before it starts"),
        ));
    }
    // `LAGO` counts the day of a cancellation as used, also the first day of the span.
    let start_day_used = policy == ProrationPolicy::Lago
        && event == ProrationEvent::Cancellation
        && t == from
        && from < end;
    if t < from || (t == from && !start_day_used) {
        return Ok(Fraction::ONE);
    }
    if t >= end {
        return Ok(Fraction::ZERO);
    }
    let (remaining, whole) = match policy {
        ProrationPolicy::Stripe => (seconds(t, end), seconds(from, end)),
        ProrationPolicy::KillBill => (
            days_between(local(zone, t), local(zone, end)),
            days_between(local(zone, from), local(zone, end)),
        ),
        ProrationPolicy::ThirtyDay => (
            days_360(local(zone, t), local(zone, end)),
            days_360(local(zone, from), local(zone, end)),
        ),
        ProrationPolicy::Lago => {
            let remaining = dates_touched(zone, t, end);
            let remaining = match event {
                ProrationEvent::Change => remaining,
                ProrationEvent::Cancellation => remaining.saturating_sub(1),
            };
            (remaining, dates_touched(zone, from, end))
        }
    };
    let exact = Fraction::new(remaining, whole);
    Ok(if policy == ProrationPolicy::KillBill {
        exact.to_places(KILL_BILL_PLACES)
    } else {
        exact
    })
}

/// The places `KILL_BILL` rounds its fraction to.
const KILL_BILL_PLACES: u32 = 9;

/// An exact fraction `numerator / denominator` in `[0, 1]`: the share of a span that
/// remains.
///
/// Prorating with it ([`Fraction::of`]) rounds the exact product `amount × numerator /
/// denominator` once, to the currency's minor unit: no digit of the fraction is cut first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fraction {
    numerator: i64,
    denominator: i64,
}

impl Fraction {
    /// The whole span.
    pub const ONE: Self = Self {
        numerator: 1,
        denominator: 1,
    };
    /// Nothing of it.
    pub const ZERO: Self = Self {
        numerator: 0,
        denominator: 1,
    };

    /// `remaining / whole`, clamped to `[0, 1]`; zero for an empty or negative whole.
    #[must_use]
    pub fn new(remaining: i64, whole: i64) -> Self {
        if whole <= 0 || remaining <= 0 {
            Self::ZERO
        } else if remaining >= whole {
            Self::ONE
        } else {
            Self {
                numerator: remaining,
                denominator: whole,
            }
        }
    }

    /// The numerator.
    #[must_use]
    pub fn numerator(self) -> i64 {
        self.numerator
    }

    /// The denominator (positive).
    #[must_use]
    pub fn denominator(self) -> i64 {
        self.denominator
    }

    /// The fraction as a decimal, rounded to 28 significant digits.
    ///
    /// # Errors
    /// `AmountTooLarge` on overflow (not reached for a fraction in `[0, 1]`).
    pub fn to_decimal(self) -> Result<Decimal, Error> {
        money::div(
            Decimal::from(self.numerator),
            Decimal::from(self.denominator),
        )
    }

    /// The fraction rounded half up to `places` decimal places, still exact.
    fn to_places(self, places: u32) -> Self {
        let scale = 10i64.checked_pow(places);
        let scaled = scale.and_then(|scale| {
            money::divide_rounded(
                i128::from(self.numerator).checked_mul(i128::from(scale))?,
                i128::from(self.denominator),
                RoundingMode::HalfUp,
            )
        });
        match (scaled.and_then(|n| i64::try_from(n).ok()), scale) {
            (Some(numerator), Some(denominator)) => Self::new(numerator, denominator),
            _ => self,
        }
    }

    /// `amount × self`, rounded once to `currency`'s minor unit with `mode`
    /// ([`money::mul_div`]).
    ///
    /// # Errors
    /// `AmountTooLarge` when the result does not fit a decimal.
    pub fn of(
        self,
        amount: Decimal,
        currency: Currency,
        mode: RoundingMode,
    ) -> Result<Decimal, Error> {
        if self == Self::ONE {
            return Ok(currency.round(amount, mode));
        }
        money::mul_ratio(amount, self.numerator, self.denominator, currency, mode)
    }

    /// `charged × paid / billed × self`, rounded once to `currency`'s minor unit with
    /// `mode`: the share of a discounted charge ([`crate::subscription::PaidShare`]) without
    /// cutting `paid / billed` to 28 digits first, so a result exactly halfway between two
    /// minor units is a true tie. (`paid` and `billed` are invoice amounts and the fraction's
    /// terms are counts of seconds or days, so their products stay well within a decimal's
    /// 28 digits; products that overflow take `charged × paid / billed` in decimals first,
    /// then [`Fraction::of`].)
    ///
    /// # Errors
    /// `AmountTooLarge` for a zero `billed` or a result that does not fit a decimal.
    pub fn of_share(
        self,
        charged: Decimal,
        paid: Decimal,
        billed: Decimal,
        currency: Currency,
        mode: RoundingMode,
    ) -> Result<Decimal, Error> {
        let terms = || -> Result<(Decimal, Decimal), Error> {
            Ok((
                money::mul(paid, Decimal::from(self.numerator))?,
                money::mul(billed, Decimal::from(self.denominator))?,
            ))
        };
        match terms() {
            Ok((numerator, denominator)) => {
                money::mul_div(charged, numerator, denominator, currency, mode)
            }
            Err(_) => self.of(
                money::div(money::mul(charged, paid)?, billed)?,
                currency,
                mode,
            ),
        }
    }
}

/// Whole seconds from `a` to `b`, cut toward zero as `TimeDelta::num_seconds` does; from the
/// two timestamps, which is cheaper than building the duration.
fn seconds(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    let whole = b.timestamp().saturating_sub(a.timestamp());
    let nanos = b.timestamp_subsec_nanos().cmp(&a.timestamp_subsec_nanos());
    match (whole.signum(), nanos) {
        (1, Ordering::Less) => whole.saturating_sub(1),
        (-1, Ordering::Greater) => whole.saturating_add(1),
        _ => whole,
    }
}

fn local(zone: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&zone).date_naive()
}

fn days_between(a: NaiveDate, b: NaiveDate) -> i64 {
    b.signed_duration_since(a).num_days()
}

fn days_360(a: NaiveDate, b: NaiveDate) -> i64 {
    let years = i64::from(b.year()).saturating_sub(i64::from(a.year()));
    let months = i64::from(b.month()).saturating_sub(i64::from(a.month()));
    let d1 = i64::from(a.day().min(30));
    let d2 = i64::from(b.day().min(30));
    years
        .saturating_mul(360)
        .saturating_add(months.saturating_mul(30))
        .saturating_add(d2)
        .saturating_sub(d1)
}

/// How many local calendar dates `[a, b)` touches: from `a`'s date to the date of the last
/// instant before `b`, both included, less any date the zone skipped in between (Samoa's
/// 2011-12-30, Kiribati's 1994-12-31), which no instant touches.
fn dates_touched(zone: Tz, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    if b <= a {
        return 0;
    }
    let last = b.checked_sub_signed(TimeDelta::nanoseconds(1)).unwrap_or(b);
    let (first_day, last_day) = (local(zone, a), local(zone, last));
    let dates = days_between(first_day, last_day).saturating_add(1);
    // A date is skipped only when the zone moves forward by a whole day; daylight saving
    // moves it by an hour or two. Only a span whose two ends are that far apart in offset
    // looks for one, date by date.
    let offset = |t: DateTime<Utc>| t.with_timezone(&zone).offset().fix().local_minus_utc();
    let moved = i64::from(offset(last)).saturating_sub(i64::from(offset(a)));
    if moved < SKIPPING_OFFSET {
        return dates;
    }
    let skipped = first_day
        .iter_days()
        .take_while(|day| *day <= last_day)
        .filter(|day| !has_instant(zone, *day))
        .count();
    dates.saturating_sub(i64::try_from(skipped).unwrap_or(i64::MAX))
}

/// The forward move of a zone's offset, in seconds, that can skip a date: half a day,
/// beyond any daylight saving change.
const SKIPPING_OFFSET: i64 = 12 * 3600;

/// Whether some instant falls on `day` in `zone`. A skipped date has none; a date the zone
/// skipped only part of still has its start or its end.
fn has_instant(zone: Tz, day: NaiveDate) -> bool {
    let start = day.and_time(NaiveTime::MIN);
    let end = day.and_hms_nano_opt(23, 59, 59, 999_999_999);
    zone.from_local_datetime(&start).earliest().is_some()
        || end.is_some_and(|end| zone.from_local_datetime(&end).earliest().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    proptest::proptest! {
        /// Seconds from the timestamps are the duration's whole seconds, cut toward zero,
        /// for instants with fractions of a second in either order.
        #[test]
        fn seconds_are_the_durations_whole_seconds(
            a in -62_000_000_000i64..250_000_000_000, a_nanos in 0u32..1_000_000_000,
            b in -62_000_000_000i64..250_000_000_000, b_nanos in 0u32..1_000_000_000,
            near in proptest::prelude::any::<bool>(),
        ) {
            let b = if near { a.saturating_add(b % 3) } else { b };
            let a = DateTime::from_timestamp(a, a_nanos).unwrap();
            let b = DateTime::from_timestamp(b, b_nanos).unwrap();
            proptest::prop_assert_eq!(seconds(a, b), b.signed_duration_since(a).num_seconds());
        }
    }

    fn f(policy: ProrationPolicy, from: &str, at: &str, end: &str) -> Decimal {
        fraction(
            policy,
            Tz::UTC,
            t(from),
            t(at),
            t(end),
            ProrationEvent::Change,
        )
        .unwrap()
    }

    #[test]
    fn lago_counts_no_date_a_zone_skipped() {
        let apia: Tz = "Pacific/Apia".parse().unwrap();
        // Local 2011-12-20 00:00 to 2012-01-21 00:00: 32 dates on the calendar, but Samoa
        // went from the 29th to the 31st.
        assert_eq!(
            dates_touched(apia, t("2011-12-20T10:00:00Z"), t("2012-01-20T10:00:00Z")),
            31
        );
        // From the 31st on, nothing was skipped.
        assert_eq!(
            dates_touched(apia, t("2011-12-30T10:00:00Z"), t("2012-01-20T10:00:00Z")),
            21
        );
        let kiritimati: Tz = "Pacific/Kiritimati".parse().unwrap();
        // 1994-12-31 does not exist there: 12-30 then 1995-01-01.
        assert_eq!(
            dates_touched(
                kiritimati,
                t("1994-12-25T10:00:00Z"),
                t("1995-01-05T10:00:00Z")
            ),
            11
        );
        // A daylight saving change skips an hour, not a date.
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            dates_touched(berlin, t("2025-03-01T00:00:00Z"), t("2025-04-01T00:00:00Z")),
            32
        );
    }

    #[test]
    fn stripe_counts_seconds() {
        // 2017-03-03T19:14:48Z in [2017-02-14, 2017-03-14): 10.00 × f = 3.64 unused.
        let fr = f(
            ProrationPolicy::Stripe,
            "2017-02-14T00:00:00Z",
            "2017-03-03T19:14:48Z",
            "2017-03-14T00:00:00Z",
        );
        let usd = crate::money::Currency::parse("USD").unwrap();
        assert_eq!(
            usd.round(fr * Decimal::TEN, crate::money::RoundingMode::HalfUp)
                .to_string(),
            "3.64"
        );
    }

    #[test]
    fn kill_bill_counts_whole_days_rounded_to_nine_places() {
        let fr = f(
            ProrationPolicy::KillBill,
            "2025-04-01T00:00:00Z",
            "2025-04-22T13:00:00Z",
            "2025-05-01T00:00:00Z",
        );
        assert_eq!(fr, Decimal::new(3, 1));
        let third = f(
            ProrationPolicy::KillBill,
            "2025-04-01T00:00:00Z",
            "2025-04-21T00:00:00Z",
            "2025-05-01T00:00:00Z",
        );
        assert_eq!(third.to_string(), "0.333333333");
    }

    #[test]
    fn edges_are_everything_and_nothing() {
        for policy in [
            ProrationPolicy::Stripe,
            ProrationPolicy::KillBill,
            ProrationPolicy::Lago,
            ProrationPolicy::ThirtyDay,
        ] {
            assert_eq!(
                f(
                    policy,
                    "2025-01-01T00:00:00Z",
                    "2025-01-01T00:00:00Z",
                    "2025-02-01T00:00:00Z"
                ),
                Decimal::ONE
            );
            assert_eq!(
                f(
                    policy,
                    "2025-01-01T00:00:00Z",
                    "2025-02-01T00:00:00Z",
                    "2025-02-01T00:00:00Z"
                ),
                Decimal::ZERO
            );
        }
    }

    #[test]
    fn lago_bills_the_change_day_to_the_new_plan_and_counts_a_cancellation_day_as_used() {
        let change = f(
            ProrationPolicy::Lago,
            "2025-01-01T00:00:00Z",
            "2025-01-11T12:00:00Z",
            "2025-02-01T00:00:00Z",
        );
        assert_eq!(change, Decimal::from(21) / Decimal::from(31));
        let cancel = fraction(
            ProrationPolicy::Lago,
            Tz::UTC,
            t("2025-01-01T00:00:00Z"),
            t("2025-01-11T12:00:00Z"),
            t("2025-02-01T00:00:00Z"),
            ProrationEvent::Cancellation,
        )
        .unwrap();
        assert_eq!(cancel, Decimal::from(20) / Decimal::from(31));
    }

    #[test]
    fn thirty_day_uses_the_30_360_rule() {
        let fr = f(
            ProrationPolicy::ThirtyDay,
            "2025-01-31T00:00:00Z",
            "2025-02-15T00:00:00Z",
            "2025-02-28T00:00:00Z",
        );
        // whole: 30 × 1 + 28 − 30 = 28; remaining: 28 − 15 = 13.
        assert_eq!(fr, Decimal::from(13) / Decimal::from(28));
    }
}
