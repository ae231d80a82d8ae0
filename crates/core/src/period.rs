//! Billing periods, anchored period series and trial durations.
//!
//! Period *n* of a series starts at `anchor + n × period`, computed from the anchor every
//! time and never by stepping from the previous period, so a series anchored on Jan 31 runs
//! Feb 28 (29), Mar 31, Apr 30 and never drifts off the month end. Adding months clamps to
//! the last day of the month. Periods are half-open: `[start, end)`. Calendar arithmetic is
//! done in UTC.
//!
//! Instants run from 0000-01-01 to 9999-12-31, the years RFC 3339 can write: an instant
//! given outside them is refused ([`check_instants`]), and so is a decision whose computed
//! dates (a period end, a trial end, a renewal) would leave them.

use crate::error::{Error, ErrorCode};
use chrono::{DateTime, Datelike, Months, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// How often a subscription is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingPeriod {
    /// Every month.
    Monthly,
    /// Every three months.
    Quarterly,
    /// Every twelve months.
    Annually,
}

impl BillingPeriod {
    /// The period's length in months.
    #[must_use]
    pub const fn months(self) -> u32 {
        match self {
            Self::Monthly => 1,
            Self::Quarterly => 3,
            Self::Annually => 12,
        }
    }

    /// The JSON name (`MONTHLY`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "MONTHLY",
            Self::Quarterly => "QUARTERLY",
            Self::Annually => "ANNUALLY",
        }
    }
}

/// A half-open interval of time `[start, end)`. Stored as `{start, end}`; one that ends
/// before it starts is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "StoredPeriod")]
pub struct Period {
    /// The first instant in the period.
    pub start: DateTime<Utc>,
    /// The first instant after the period.
    pub end: DateTime<Utc>,
}

impl Period {
    /// Whether `t` lies in `[start, end)`.
    #[must_use]
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// A period as stored, before its ends are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPeriod {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TryFrom<StoredPeriod> for Period {
    type Error = String;

    fn try_from(stored: StoredPeriod) -> Result<Self, String> {
        let StoredPeriod { start, end } = stored;
        if end < start {
            return Err(format!(
                "period ends at `{end}` before it starts at `{start}`"
            ));
        }
        Ok(Self { start, end })
    }
}

/// Whether RFC 3339 can write `t`: its year has four digits (0000 to 9999).
pub(crate) fn in_range(t: DateTime<Utc>) -> bool {
    (0..=9999).contains(&t.year())
}

pub(crate) fn out_of_range() -> Error {
    Error::new(
        ErrorCode::InvalidArgumentError,
        "date out of range: a date this decision computes (a period end, a trial end, a renewal) would pass 9999-12-31",
    )
}

/// A computed instant, or `InvalidArgumentError` when it leaves years 0000 to 9999.
pub(crate) fn within_range(t: Option<DateTime<Utc>>) -> Result<DateTime<Utc>, Error> {
    t.filter(|t| in_range(*t)).ok_or_else(out_of_range)
}

/// Refuses the first of the instants given as input (each named by its field) that RFC 3339
/// cannot write; absent ones pass.
///
/// # Errors
/// `InvalidArgumentError` for an instant before 0000-01-01 or after 9999-12-31.
pub fn check_instants(instants: &[(&str, Option<DateTime<Utc>>)]) -> Result<(), Error> {
    match instants
        .iter()
        .find_map(|(name, t)| t.filter(|t| !in_range(*t)).map(|t| (name, t)))
    {
        None => Ok(()),
        Some((name, t)) => Err(Error::new(
            ErrorCode::InvalidArgumentError,
            format!(
                "`{name}` `{}` is out of range: instants run from 0000-01-01 to 9999-12-31",
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            ),
        )),
    }
}

/// `t` plus `months` calendar months, clamped to the end of the target month
/// (Jan 31 + 1 month = Feb 28, or 29 in a leap year).
///
/// # Errors
/// `InvalidArgumentError` when the result is out of range.
pub fn add_months(t: DateTime<Utc>, months: u32) -> Result<DateTime<Utc>, Error> {
    within_range(t.checked_add_months(Months::new(months)))
}

/// `t` minus `months` calendar months, clamped like [`add_months`].
///
/// # Errors
/// `InvalidArgumentError` when the result is out of range.
pub fn sub_months(t: DateTime<Utc>, months: u32) -> Result<DateTime<Utc>, Error> {
    within_range(t.checked_sub_months(Months::new(months)))
}

/// The first billing period from `start`, for a subscription billed every `billing_period`
/// (none for one without a billing period).
///
/// # Errors
/// `InvalidArgumentError` for a period past the last representable date.
pub fn first_period(
    start: DateTime<Utc>,
    billing_period: Option<BillingPeriod>,
) -> Result<Option<Period>, Error> {
    billing_period
        .map(|bp| PeriodSeries::new(start, bp).nth(0))
        .transpose()
}

/// A series of consecutive periods of `months` months anchored at `anchor`: period `n` is
/// `[anchor + n × months, anchor + (n + 1) × months)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeriodSeries {
    anchor: DateTime<Utc>,
    months: u32,
}

impl PeriodSeries {
    /// The series of `billing_period`s anchored at `anchor`.
    #[must_use]
    pub fn new(anchor: DateTime<Utc>, billing_period: BillingPeriod) -> Self {
        Self::of_months(anchor, billing_period.months())
    }

    /// The series of `months`-month periods anchored at `anchor` (a billing month is 1).
    /// A length of 0 is taken as 1.
    #[must_use]
    pub fn of_months(anchor: DateTime<Utc>, months: u32) -> Self {
        Self {
            anchor,
            months: months.max(1),
        }
    }

    /// The anchor: the start of period 0.
    #[must_use]
    pub fn anchor(&self) -> DateTime<Utc> {
        self.anchor
    }

    /// The start of period `n`.
    ///
    /// # Errors
    /// `InvalidArgumentError` when the date is out of range.
    pub fn start_of(&self, n: u32) -> Result<DateTime<Utc>, Error> {
        let months = n.checked_mul(self.months).ok_or_else(out_of_range)?;
        add_months(self.anchor, months)
    }

    /// Period `n`.
    ///
    /// # Errors
    /// `InvalidArgumentError` when a date is out of range.
    pub fn nth(&self, n: u32) -> Result<Period, Error> {
        let next = n.checked_add(1).ok_or_else(out_of_range)?;
        Ok(Period {
            start: self.start_of(n)?,
            end: self.start_of(next)?,
        })
    }

    /// The index of the period containing `t`; instants before the anchor belong to
    /// period 0's predecessor, which does not exist, so they give `None`.
    ///
    /// # Errors
    /// `InvalidArgumentError` when a date is out of range.
    pub fn index_of(&self, t: DateTime<Utc>) -> Result<Option<u32>, Error> {
        if t < self.anchor {
            return Ok(None);
        }
        // Whole calendar months between the anchor and t give an estimate that is at most
        // one period too high (the day of month may not have been reached yet).
        let year_months = i64::from(t.year())
            .checked_sub(i64::from(self.anchor.year()))
            .and_then(|y| y.checked_mul(12))
            .ok_or_else(out_of_range)?;
        let month_diff = year_months
            .checked_add(i64::from(t.month()))
            .and_then(|m| m.checked_sub(i64::from(self.anchor.month())))
            .ok_or_else(out_of_range)?;
        let estimate = month_diff
            .checked_div(i64::from(self.months))
            .unwrap_or(0)
            .max(0);
        let mut n = u32::try_from(estimate).map_err(|_| out_of_range())?;
        // At most two corrections are ever needed; the bound keeps this loop finite.
        for _ in 0..4 {
            let period = self.nth(n)?;
            if t < period.start {
                n = n.checked_sub(1).ok_or_else(out_of_range)?;
            } else if t >= period.end {
                n = n.checked_add(1).ok_or_else(out_of_range)?;
            } else {
                return Ok(Some(n));
            }
        }
        Err(out_of_range())
    }

    /// The period containing `t`, or `None` for an instant before the anchor.
    ///
    /// # Errors
    /// `InvalidArgumentError` when a date is out of range.
    pub fn containing(&self, t: DateTime<Utc>) -> Result<Option<Period>, Error> {
        match self.index_of(t)? {
            Some(n) => self.nth(n).map(Some),
            None => Ok(None),
        }
    }
}

/// The unit of a trial duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrialUnit {
    /// Days of exactly 24 hours.
    Day,
    /// Calendar months, clamped to the month end.
    Month,
}

/// How long a trial lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrialDuration {
    /// How many units (at least 1 in a valid catalog).
    pub count: u32,
    /// Days or months.
    pub unit: TrialUnit,
}

impl TrialDuration {
    /// The end of a trial of this duration starting at `start`: `n × 24 h` for days, `n`
    /// calendar months (clamped) for months.
    ///
    /// # Errors
    /// `InvalidArgumentError` when the date is out of range.
    pub fn end_from(&self, start: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
        match self.unit {
            TrialUnit::Day => within_range(
                TimeDelta::try_days(i64::from(self.count))
                    .and_then(|d| start.checked_add_signed(d)),
            ),
            TrialUnit::Month => add_months(start, self.count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn month_end_anchor_clamps_without_drifting() {
        let series = PeriodSeries::new(t("2025-01-31T00:00:00Z"), BillingPeriod::Monthly);
        let starts: Vec<_> = (0..4).map(|n| series.start_of(n).unwrap()).collect();
        assert_eq!(
            starts,
            vec![
                t("2025-01-31T00:00:00Z"),
                t("2025-02-28T00:00:00Z"),
                t("2025-03-31T00:00:00Z"),
                t("2025-04-30T00:00:00Z"),
            ]
        );
        let leap = PeriodSeries::new(t("2024-01-31T10:00:00Z"), BillingPeriod::Monthly);
        assert_eq!(leap.start_of(1).unwrap(), t("2024-02-29T10:00:00Z"));
    }

    #[test]
    fn containing_finds_the_half_open_period() {
        let series = PeriodSeries::new(t("2025-01-31T00:00:00Z"), BillingPeriod::Monthly);
        let p = series
            .containing(t("2025-02-28T00:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(p.start, t("2025-02-28T00:00:00Z"));
        assert_eq!(p.end, t("2025-03-31T00:00:00Z"));
        let p = series
            .containing(t("2025-02-27T23:59:59Z"))
            .unwrap()
            .unwrap();
        assert_eq!(p.start, t("2025-01-31T00:00:00Z"));
        assert!(
            series
                .containing(t("2025-01-30T00:00:00Z"))
                .unwrap()
                .is_none()
        );
        let yearly = PeriodSeries::new(t("2024-02-29T00:00:00Z"), BillingPeriod::Annually);
        let p = yearly
            .containing(t("2026-03-01T00:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(p.start, t("2026-02-28T00:00:00Z"));
        assert_eq!(p.end, t("2027-02-28T00:00:00Z"));
    }

    #[test]
    fn dates_stay_in_the_years_rfc_3339_writes() {
        let code = |r: Result<DateTime<Utc>, Error>| r.map_err(|e| e.code());
        assert_eq!(
            code(add_months(t("9999-11-30T00:00:00Z"), 1)),
            Ok(t("9999-12-30T00:00:00Z"))
        );
        assert_eq!(
            code(add_months(t("9999-12-01T00:00:00Z"), 1)),
            Err(ErrorCode::InvalidArgumentError)
        );
        let day = TrialDuration {
            count: 1,
            unit: TrialUnit::Day,
        };
        assert_eq!(
            code(day.end_from(t("9999-12-31T00:00:01Z"))),
            Err(ErrorCode::InvalidArgumentError)
        );
        let last = t("9999-12-31T23:59:59.999999999Z");
        assert!(check_instants(&[("at", Some(last)), ("endDate", None)]).is_ok());
        assert!(check_instants(&[("at", Some(t("0000-01-01T00:00:00Z")))]).is_ok());
        let err = check_instants(&[
            ("at", Some(last)),
            ("endDate", Some(t("+10000-01-01T00:00:00Z"))),
        ])
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgumentError);
        assert!(
            err.message()
                .starts_with("`endDate` `+10000-01-01T00:00:00Z`"),
            "{}",
            err.message()
        );
        assert!(check_instants(&[("at", Some(t("-0001-12-31T23:59:59Z")))]).is_err());
    }

    #[test]
    fn trials_of_days_are_exact_and_months_clamp() {
        let day = TrialDuration {
            count: 14,
            unit: TrialUnit::Day,
        };
        assert_eq!(
            day.end_from(t("2025-01-01T00:00:00Z")).unwrap(),
            t("2025-01-15T00:00:00Z")
        );
        let month = TrialDuration {
            count: 1,
            unit: TrialUnit::Month,
        };
        assert_eq!(
            month.end_from(t("2025-01-31T08:00:00Z")).unwrap(),
            t("2025-02-28T08:00:00Z")
        );
    }
}
