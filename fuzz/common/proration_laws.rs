//! The `proration_laws` target: `tollgate_core::proration::fraction` under every policy, in
//! every time zone, for spans and instants anywhere within a few centuries of 2025.
//!
//! The fraction is in `[0, 1]`, exactly 1 at (and before) the span's start (except a `LAGO`
//! cancellation, which counts the start day as used), exactly 0 at (and after) its end, and never grows as the instant moves later. A credit computed as
//! proration computes it (the charged line amount times the fraction, rounded to the
//! currency) is never negative and never exceeds the amount charged. A span that ends before
//! it starts is an error with a code, not a panic.

use chrono::{DateTime, Months, TimeDelta, Utc};
use rust_decimal::Decimal;
use tollgate_core::money::{self, Currency, RoundingMode};
use tollgate_core::proration::{ProrationEvent, ProrationPolicy, fraction};

fuzz_enum! {
    /// How long the span is.
    pub enum Span {
        Seconds(u32),
        Hours(u16),
        Days(u16),
        Months(u8),
    }
}

fuzz_enum! {
    /// An instant, relative to the span.
    pub enum At {
        Start,
        End,
        Within(u16),
        Before(u32),
        After(u32),
    }
}

fuzz_struct! {
    /// The whole input.
    pub struct Input {
        pub policy: u8,
        pub zone: u16,
        pub from: i64,
        pub span: Span,
        pub t1: At,
        pub t2: At,
        pub cancellation: bool,
        pub charged: u64,
        pub scale: u8,
        pub currency: u8,
        pub half_even: bool,
        pub reversed: bool,
    }
}

const POLICIES: [ProrationPolicy; 4] = [
    ProrationPolicy::Stripe,
    ProrationPolicy::KillBill,
    ProrationPolicy::Lago,
    ProrationPolicy::ThirtyDay,
];
/// Three centuries of seconds: span starts fall within 150 years of 2025.
const RANGE: i64 = 300 * 366 * 86_400;

impl At {
    fn instant(&self, from: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
        let moved = match self {
            Self::Start => Some(from),
            Self::End => Some(end),
            Self::Within(k) => {
                // `k / 65535` of the way from `from` to `end`, to the second.
                let whole = end.signed_duration_since(from).num_seconds();
                let part = i128::from(whole) * i128::from(*k) / 65_535;
                i64::try_from(part)
                    .ok()
                    .and_then(|s| from.checked_add_signed(TimeDelta::seconds(s)))
            }
            Self::Before(s) => from.checked_sub_signed(TimeDelta::seconds(i64::from(*s))),
            Self::After(s) => end.checked_add_signed(TimeDelta::seconds(i64::from(*s))),
        };
        moved.unwrap_or(from)
    }
}

/// Checks the laws on the input.
pub fn exercise(input: &Input) {
    let policy = POLICIES[usize::from(input.policy) % POLICIES.len()];
    let zones = chrono_tz::TZ_VARIANTS;
    let zone = zones[usize::from(input.zone) % zones.len()];
    let from =
        DateTime::from_timestamp(1_735_689_600 + input.from.rem_euclid(RANGE) - RANGE / 2, 0)
            .expect("within the range of instants");
    let end = match input.span {
        Span::Seconds(s) => from.checked_add_signed(TimeDelta::seconds(i64::from(s))),
        Span::Hours(h) => from.checked_add_signed(TimeDelta::hours(i64::from(h))),
        Span::Days(d) => from.checked_add_signed(TimeDelta::days(i64::from(d))),
        Span::Months(m) => from.checked_add_months(Months::new(u32::from(m % 121))),
    }
    .expect("within the range of instants");
    let event = if input.cancellation {
        ProrationEvent::Cancellation
    } else {
        ProrationEvent::Change
    };
    let context = format!("{policy:?} in {zone} over {from}..{end} ({event:?})");
    let f = |t: DateTime<Utc>| match fraction(policy, zone, from, t, end, event) {
        Ok(f) => f,
        Err(e) => panic!("{context}: no fraction at {t}: {e}"),
    };

    if input.reversed && end > from {
        let e = fraction(policy, zone, end, from, from, event)
            .expect_err("a span that ends before it starts is refused");
        assert_eq!(e.code().as_str(), "InvalidArgumentError", "{context}: {e}");
    }

    let (t1, t2) = (input.t1.instant(from, end), input.t2.instant(from, end));
    let (early, late) = if t1 <= t2 { (t1, t2) } else { (t2, t1) };
    let (f_early, f_late) = (f(early), f(late));
    for (t, ft) in [(early, f_early), (late, f_late)] {
        assert!(
            (Decimal::ZERO..=Decimal::ONE).contains(&ft),
            "{context}: fraction {ft} at {t} is outside [0, 1]"
        );
        // A `LAGO` cancellation counts its day as used, the span's first day too.
        let start_day_used =
            policy == ProrationPolicy::Lago && event == ProrationEvent::Cancellation && from < end;
        if t < from || (t == from && !start_day_used) {
            assert_eq!(ft, Decimal::ONE, "{context}: at {t}, not after the start");
        } else if t == from {
            assert!(
                ft < Decimal::ONE,
                "{context}: the start day is not counted as used"
            );
        } else if t >= end {
            assert_eq!(ft, Decimal::ZERO, "{context}: at {t}, not before the end");
        }
    }
    assert!(
        f_early >= f_late,
        "{context}: the fraction grew from {f_early} at {early} to {f_late} at {late}"
    );

    let currency = ["USD", "JPY", "KWD", "EUR"][usize::from(input.currency % 4)];
    let currency = Currency::parse(currency).expect("a known currency");
    let mode = if input.half_even {
        RoundingMode::HalfEven
    } else {
        RoundingMode::HalfUp
    };
    // A charged amount is an invoice line's: already rounded to the currency.
    let raw = Decimal::from_i128_with_scale(i128::from(input.charged), u32::from(input.scale % 29));
    let charged = currency.round(raw, mode);
    for (t, ft) in [(early, f_early), (late, f_late)] {
        let Ok(product) = money::mul(charged, ft) else {
            continue;
        };
        let credit = currency.round(product, mode);
        assert!(
            credit >= Decimal::ZERO && credit <= charged,
            "{context}: at {t} the credit {credit} of {charged} × {ft} is out of bounds"
        );
    }
}
