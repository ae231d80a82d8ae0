//! Currencies, amounts and rounding.
//!
//! Amounts are [`Decimal`]s in major units (`49` is 49.00 USD). Intermediate values stay
//! exact; rounding to the currency's minor unit happens once per invoice line, with an
//! explicit [`RoundingMode`]. Every operation is checked: overflow is an error, never a panic.

use crate::error::{Error, ErrorCode};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 currency with its minor-unit exponent (USD 2, JPY 0, KWD 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// Active ISO 4217 codes whose minor unit is not 2 digits.
const EXPONENTS: &[(&str, u8)] = &[
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("UYI", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    ("CLF", 4),
    ("UYW", 4),
];

/// Active ISO 4217 codes with a 2-digit minor unit.
const TWO_DIGIT: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
    "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR",
    "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UZS",
    "VED", "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
];

impl Currency {
    /// The currency with ISO 4217 code `code` (upper case), or `None` for an unknown code.
    #[must_use]
    pub fn parse(code: &str) -> Option<Self> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        let exponent = match EXPONENTS.iter().find(|(c, _)| *c == code) {
            Some((_, e)) => *e,
            None if TWO_DIGIT.contains(&code) => 2,
            None => return None,
        };
        Some(Self {
            code: bytes,
            exponent,
        })
    }

    /// The ISO 4217 code.
    #[must_use]
    pub fn code(&self) -> &str {
        // Built only from the ASCII tables above.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// How many decimal places an amount of this currency has (USD 2, JPY 0, KWD 3).
    #[must_use]
    pub fn minor_units(&self) -> u32 {
        u32::from(self.exponent)
    }

    /// `amount` rounded to this currency's minor unit with `mode`, written with exactly
    /// that many decimal places (`12.5` USD becomes `12.50`).
    #[must_use]
    pub fn round(&self, amount: Decimal, mode: RoundingMode) -> Decimal {
        let places = self.minor_units();
        if amount.scale() == places {
            // Already exactly at the minor unit: nothing to round or pad.
            return amount;
        }
        if amount.is_zero() {
            return Decimal::new(0, places);
        }
        let mut rounded = amount.round_dp_with_strategy(places, mode.strategy());
        rounded.rescale(places);
        rounded
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown currency `{code}`")))
    }
}

/// How a value exactly between two minor units is rounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoundingMode {
    /// Half away from zero: 74.985 → 74.99, −0.005 → −0.01.
    #[default]
    HalfUp,
    /// Half to even (banker's rounding): 74.985 → 74.98.
    HalfEven,
}

impl RoundingMode {
    fn strategy(self) -> RoundingStrategy {
        match self {
            Self::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Self::HalfEven => RoundingStrategy::MidpointNearestEven,
        }
    }
}

/// An amount of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// `amount` of `currency`, kept exact (not rounded).
    #[must_use]
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// Zero of `currency`.
    #[must_use]
    pub fn zero(currency: Currency) -> Self {
        Self::new(Decimal::ZERO, currency)
    }

    /// The amount in major units.
    #[must_use]
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    #[must_use]
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The sum of two amounts of one currency.
    ///
    /// # Errors
    /// `CurrencyMismatch` for two currencies, `AmountTooLarge` on overflow.
    pub fn checked_add(self, other: Self) -> Result<Self, Error> {
        self.same_currency(other)?;
        Ok(Self::new(add(self.amount, other.amount)?, self.currency))
    }

    /// The difference of two amounts of one currency.
    ///
    /// # Errors
    /// `CurrencyMismatch` for two currencies, `AmountTooLarge` on overflow.
    pub fn checked_sub(self, other: Self) -> Result<Self, Error> {
        self.same_currency(other)?;
        Ok(Self::new(sub(self.amount, other.amount)?, self.currency))
    }

    /// The amount times `factor`, kept exact.
    ///
    /// # Errors
    /// `AmountTooLarge` on overflow.
    pub fn checked_mul(self, factor: Decimal) -> Result<Self, Error> {
        Ok(Self::new(mul(self.amount, factor)?, self.currency))
    }

    /// Rounded to the currency's minor unit with `mode`.
    #[must_use]
    pub fn round(self, mode: RoundingMode) -> Self {
        Self::new(self.currency.round(self.amount, mode), self.currency)
    }

    fn same_currency(self, other: Self) -> Result<(), Error> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::CurrencyMismatch,
                format!(
                    "cannot combine `{}` with `{}`",
                    self.currency, other.currency
                ),
            ))
        }
    }
}

impl fmt::Display for Money {
    /// Written with exactly the currency's minor units, rounding half up if the amount is
    /// finer: `12.50 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = self.currency.round(self.amount, RoundingMode::HalfUp);
        write!(f, "{rounded} {}", self.currency)
    }
}

fn overflow() -> Error {
    Error::new(ErrorCode::AmountTooLarge, "amount overflowed")
}

/// `a + b`, or `AmountTooLarge`.
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn add(a: Decimal, b: Decimal) -> Result<Decimal, Error> {
    a.checked_add(b).ok_or_else(overflow)
}

/// `a − b`, or `AmountTooLarge`.
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn sub(a: Decimal, b: Decimal) -> Result<Decimal, Error> {
    a.checked_sub(b).ok_or_else(overflow)
}

/// `a × b`, or `AmountTooLarge`.
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn mul(a: Decimal, b: Decimal) -> Result<Decimal, Error> {
    a.checked_mul(b).ok_or_else(overflow)
}

/// `a ÷ b`, or `AmountTooLarge` (also for a zero divisor).
///
/// # Errors
/// `AmountTooLarge` on overflow or division by zero.
pub fn div(a: Decimal, b: Decimal) -> Result<Decimal, Error> {
    a.checked_div(b).ok_or_else(overflow)
}

/// `amount × numerator / denominator`, rounded once to `currency`'s minor unit with `mode`.
///
/// The product and quotient are exact: nothing is cut to 28 digits before the one rounding,
/// so a result exactly halfway between two minor units is a true tie for `mode`. Amounts
/// beyond 128 bits fall back to decimal arithmetic.
///
/// # Errors
/// `AmountTooLarge` for a zero denominator or a result a decimal cannot hold.
pub fn mul_div(
    amount: Decimal,
    numerator: Decimal,
    denominator: Decimal,
    currency: Currency,
    mode: RoundingMode,
) -> Result<Decimal, Error> {
    if denominator.is_zero() {
        return Err(overflow());
    }
    let places = currency.minor_units();
    // amount × n / d × 10^places = ma × mn × 10^(places + sd) / (md × 10^(sa + sn)): in 64
    // bits when every step fits (the usual case), else in 128, else in decimals.
    let exponent = i64::from(places)
        .checked_add(i64::from(denominator.scale()))
        .and_then(|e| e.checked_sub(i64::from(amount.scale())))
        .and_then(|e| e.checked_sub(i64::from(numerator.scale())));
    let fast = exponent.and_then(|e| {
        scaled_64(
            i64::try_from(amount.mantissa()).ok()?,
            i64::try_from(numerator.mantissa()).ok()?,
            i64::try_from(denominator.mantissa()).ok()?,
            e,
            places,
            mode,
        )
    });
    if let Some(rounded) = fast {
        return Ok(rounded);
    }
    let mantissas = product(amount.mantissa(), numerator.mantissa());
    let divisor = denominator.mantissa();
    let (top, bottom) = match exponent.map(|e| (e, u32::try_from(e.unsigned_abs()))) {
        Some((e, Ok(shift))) if e >= 0 => (
            mantissas.zip(pow10(shift)).and_then(|(p, f)| product(p, f)),
            Some(divisor),
        ),
        Some((_, Ok(shift))) => (mantissas, pow10(shift).and_then(|f| product(f, divisor))),
        _ => (None, None),
    };
    let exact = top
        .zip(bottom)
        .and_then(|(t, b)| divide_rounded(t, b, mode))
        .and_then(|q| Decimal::try_from_i128_with_scale(q, places).ok());
    if let Some(rounded) = exact {
        return Ok(rounded);
    }
    let product = match mul(amount, numerator) {
        Ok(p) => div(p, denominator)?,
        Err(_) => mul(amount, div(numerator, denominator)?)?,
    };
    Ok(currency.round(product, mode))
}

/// `amount × numerator / denominator` for whole-number factors, rounded once to
/// `currency`'s minor unit with `mode`: [`mul_div`] without turning the factors into decimals
/// first. An amount with more places than the currency, or a mantissa beyond 64 bits, takes
/// [`mul_div`]; the result is the same either way.
///
/// # Errors
/// As [`mul_div`].
pub fn mul_ratio(
    amount: Decimal,
    numerator: i64,
    denominator: i64,
    currency: Currency,
    mode: RoundingMode,
) -> Result<Decimal, Error> {
    let places = currency.minor_units();
    let fast = i64::try_from(amount.mantissa()).ok().and_then(|m| {
        scaled_64(
            m,
            numerator,
            denominator,
            i64::from(places).checked_sub(i64::from(amount.scale()))?,
            places,
            mode,
        )
    });
    match fast {
        Some(rounded) => Ok(rounded),
        None => mul_div(
            amount,
            Decimal::from(numerator),
            Decimal::from(denominator),
            currency,
            mode,
        ),
    }
}

/// `a × n / d × 10^exponent` rounded to a whole number with `mode`, as a decimal with
/// `places` places, when every step fits 64 bits; `None` otherwise (the caller then takes
/// 128 bits or decimals).
// Inlined into both callers: each then knows which way the exponent goes (`benches/instructions.sh`
// counts about 100 fewer instructions per decided upgrade than with a call).
#[inline(always)]
fn scaled_64(
    a: i64,
    n: i64,
    d: i64,
    exponent: i64,
    places: u32,
    mode: RoundingMode,
) -> Option<Decimal> {
    let power = 10i64.checked_pow(u32::try_from(exponent.unsigned_abs()).ok()?)?;
    let (top, bottom) = if exponent >= 0 {
        (a.checked_mul(power)?.checked_mul(n)?, d)
    } else {
        (a.checked_mul(n)?, d.checked_mul(power)?)
    };
    let (top, bottom) = if bottom < 0 {
        (top.checked_neg()?, bottom.checked_neg()?)
    } else {
        (top, bottom)
    };
    divide_rounded_64(top, bottom, mode).and_then(|q| Decimal::try_new(q, places).ok())
}

/// `a × b`, when it fits.
fn product(a: i128, b: i128) -> Option<i128> {
    match (i64::try_from(a), i64::try_from(b)) {
        // Two 64-bit factors make at most 126 bits: the product cannot wrap.
        (Ok(a), Ok(b)) => Some(i128::from(a).wrapping_mul(i128::from(b))),
        _ => a.checked_mul(b),
    }
}

/// The powers of ten an `i128` holds: `10^0` to `10^38`.
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "evaluated while compiling: a bad index or an overflow fails the build"
)]
const POWERS_OF_TEN: [i128; 39] = {
    let mut powers = [1i128; 39];
    let mut i = 1;
    while i < powers.len() {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// `10^exponent`, when it fits.
fn pow10(exponent: u32) -> Option<i128> {
    usize::try_from(exponent)
        .ok()
        .and_then(|e| POWERS_OF_TEN.get(e))
        .copied()
}

/// `numerator / denominator` rounded to a whole number with `mode`; `None` for a zero
/// denominator or on overflow.
pub(crate) fn divide_rounded(
    numerator: i128,
    denominator: i128,
    mode: RoundingMode,
) -> Option<i128> {
    let (numerator, denominator) = if denominator < 0 {
        (numerator.checked_neg()?, denominator.checked_neg()?)
    } else {
        (numerator, denominator)
    };
    if denominator == 0 {
        return None;
    }
    // One division: in 64 bits when both fit (the usual case), else in 128.
    if let (Ok(n), Ok(d)) = (i64::try_from(numerator), i64::try_from(denominator)) {
        return divide_rounded_64(n, d, mode).map(i128::from);
    }
    let quotient = numerator.checked_div(denominator)?;
    let remainder = numerator.checked_rem(denominator)?.checked_abs()?;
    // Compared with half the denominator without doubling the remainder past it.
    let rest = denominator.checked_sub(remainder)?;
    if rounds_away(remainder.cmp(&rest), quotient.checked_rem(2)? != 0, mode) {
        quotient.checked_add(numerator.signum())
    } else {
        Some(quotient)
    }
}

/// [`divide_rounded`] in 64 bits: `numerator / denominator` rounded to a whole number with
/// `mode`; `None` for a denominator that is not positive or on overflow.
fn divide_rounded_64(numerator: i64, denominator: i64, mode: RoundingMode) -> Option<i64> {
    if denominator <= 0 {
        return None;
    }
    let quotient = numerator.checked_div(denominator)?;
    let remainder = numerator.checked_rem(denominator)?.checked_abs()?;
    let rest = denominator.checked_sub(remainder)?;
    if rounds_away(remainder.cmp(&rest), quotient.checked_rem(2)? != 0, mode) {
        quotient.checked_add(numerator.signum())
    } else {
        Some(quotient)
    }
}

/// Whether a quotient cut toward zero rounds away from zero under `mode`, given how its
/// remainder compares with what is left of the denominator (`Greater`: past the half) and
/// whether the quotient is odd.
fn rounds_away(remainder_against_rest: std::cmp::Ordering, odd: bool, mode: RoundingMode) -> bool {
    match remainder_against_rest {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match mode {
            RoundingMode::HalfUp => true,
            RoundingMode::HalfEven => odd,
        },
    }
}

/// The sum of `amounts`, or `AmountTooLarge`.
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn sum<I: IntoIterator<Item = Decimal>>(amounts: I) -> Result<Decimal, Error> {
    amounts.into_iter().try_fold(Decimal::ZERO, add)
}

/// Why an amount's text did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountParseError {
    /// Not a decimal number.
    Malformed,
    /// A value beyond what a decimal holds (about 7.9 × 10²⁸, or finer than 28 decimal
    /// places), however it is written.
    TooLarge,
}

/// Parses an amount written as JSON number text or a string (`"12.50"`, `49`, `1e3`),
/// exactly: no digit is lost or rounded. The value decides, not the spelling: `0e99999` is
/// zero and `10.000…0` ten, however many zeros they are written with.
///
/// # Errors
/// [`AmountParseError::Malformed`] for text that is not a number,
/// [`AmountParseError::TooLarge`] for a value a decimal cannot hold exactly (beyond about
/// 7.9 × 10²⁸, or finer than 28 decimal places).
pub fn parse_amount(text: &str) -> Result<Decimal, AmountParseError> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (
            m,
            Some(parse_exponent(e).ok_or(AmountParseError::Malformed)?),
        ),
        None => (body, None),
    };
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let (int, frac) = match mantissa.split_once('.') {
        // `1.`, `.5` and `1.5`, not a lone `.`
        Some((i, f)) if is_digits(i) && is_digits(f) && !(i.is_empty() && f.is_empty()) => (i, f),
        None if !mantissa.is_empty() && is_digits(mantissa) => (mantissa, ""),
        _ => return Err(AmountParseError::Malformed),
    };
    // value = digits × 10^(exponent − fraction length); zeros at either end of the digits
    // change only where the decimal point goes.
    let digits = || int.bytes().chain(frac.bytes());
    let total = int.len().saturating_add(frac.len());
    let trailing = digits().rev().take_while(|b| *b == b'0').count();
    if trailing == total {
        return Ok(Decimal::ZERO);
    }
    let leading = digits().take_while(|b| *b == b'0').count();
    let significant = total.saturating_sub(trailing).saturating_sub(leading);
    // A decimal holds at most 29 significant digits.
    if significant > 29 {
        return Err(AmountParseError::TooLarge);
    }
    let mut coefficient: u128 = 0;
    for digit in digits().skip(leading).take(significant) {
        coefficient = coefficient
            .checked_mul(10)
            .and_then(|c| c.checked_add(u128::from(digit.saturating_sub(b'0'))))
            .ok_or(AmountParseError::TooLarge)?;
    }
    let places = i64::try_from(frac.len())
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(trailing).unwrap_or(i64::MAX))
        .saturating_sub(exponent.unwrap_or(0));
    let scale = match u32::try_from(places) {
        Ok(scale) => scale,
        // Negative places: whole zeros to append.
        Err(_) => {
            let zeros =
                u32::try_from(places.unsigned_abs()).map_err(|_| AmountParseError::TooLarge)?;
            coefficient = 10u128
                .checked_pow(zeros)
                .and_then(|power| coefficient.checked_mul(power))
                .ok_or(AmountParseError::TooLarge)?;
            0
        }
    };
    let signed = i128::try_from(coefficient).map_err(|_| AmountParseError::TooLarge)?;
    let signed = if negative {
        signed.checked_neg()
    } else {
        Some(signed)
    }
    .ok_or(AmountParseError::TooLarge)?;
    Decimal::try_from_i128_with_scale(signed, scale)
        .map(|d| d.normalize())
        .map_err(|_| AmountParseError::TooLarge)
}

/// An exponent's value (`+5`, `-3`, `07`); one beyond `i64` is taken as ±`i64::MAX`, which
/// no amount reaches either way.
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().try_fold(0i64, |n, b| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(b.saturating_sub(b'0'))))
    });
    let magnitude = magnitude.unwrap_or(i64::MAX);
    Some(if negative {
        magnitude.saturating_neg()
    } else {
        magnitude
    })
}

/// Writes `amount` rounded half up to `places` decimal places, with exactly that many.
#[must_use]
pub fn format_amount(amount: Decimal, places: u32) -> String {
    let mut rounded = amount.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(places);
    rounded.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    #[test]
    fn currencies_know_their_minor_units() {
        assert_eq!(Currency::parse("USD").unwrap().minor_units(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().minor_units(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().minor_units(), 3);
        assert!(Currency::parse("usd").is_none());
        assert!(Currency::parse("XYZ").is_none());
        assert!(Currency::parse("").is_none());
    }

    #[test]
    fn rounding_modes_differ_only_on_halves() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(
            usd.round(d("74.985"), RoundingMode::HalfUp).to_string(),
            "74.99"
        );
        assert_eq!(
            usd.round(d("74.985"), RoundingMode::HalfEven).to_string(),
            "74.98"
        );
        assert_eq!(
            usd.round(d("-0.005"), RoundingMode::HalfUp).to_string(),
            "-0.01"
        );
        assert_eq!(
            usd.round(d("12.5"), RoundingMode::HalfUp).to_string(),
            "12.50"
        );
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(
            jpy.round(d("100.5"), RoundingMode::HalfEven).to_string(),
            "100"
        );
    }

    #[test]
    fn every_power_of_ten_an_i128_holds_is_there() {
        for e in 0..=38 {
            assert_eq!(pow10(e), 10i128.checked_pow(e), "10^{e}");
        }
        assert_eq!(pow10(39), None);
        assert_eq!(pow10(u32::MAX), None);
    }

    #[test]
    fn a_product_is_exact_or_refused() {
        let wide = i128::from(i64::MAX);
        assert_eq!(product(wide, wide), Some(wide * wide));
        assert_eq!(
            product(i128::from(i64::MIN), -1),
            Some(-i128::from(i64::MIN))
        );
        assert_eq!(product(wide + 1, 3), Some((wide + 1) * 3));
        assert_eq!(product(i128::MAX, 2), None);
        assert_eq!(product(-7, 6), Some(-42));
    }

    #[test]
    fn a_quotient_rounds_alike_in_64_and_128_bits() {
        // The same ratios, once with operands that fit 64 bits and once scaled past them.
        let big = 10i128.pow(20);
        for (n, d, half_up, half_even) in [
            (25, 10, 3, 2),
            (35, 10, 4, 4),
            (-25, 10, -3, -2),
            (24, 10, 2, 2),
            (-26, 10, -3, -3),
            (7, -2, -4, -4),
        ] {
            for scale in [1, big] {
                let (n, d) = (n * scale, d * scale);
                assert_eq!(
                    divide_rounded(n, d, RoundingMode::HalfUp),
                    Some(half_up),
                    "{n} / {d}"
                );
                assert_eq!(
                    divide_rounded(n, d, RoundingMode::HalfEven),
                    Some(half_even),
                    "{n} / {d}"
                );
            }
        }
        assert_eq!(divide_rounded(1, 0, RoundingMode::HalfUp), None);
        assert_eq!(divide_rounded(i128::MIN, -1, RoundingMode::HalfUp), None);
    }

    #[test]
    fn amounts_parse_exactly_or_say_why_not() {
        assert_eq!(parse_amount("12.50"), Ok(d("12.5")));
        assert_eq!(parse_amount("0.0001"), Ok(d("0.0001")));
        assert_eq!(parse_amount("1e3"), Ok(d("1000")));
        assert_eq!(parse_amount("-3"), Ok(d("-3")));
        assert_eq!(parse_amount("abc"), Err(AmountParseError::Malformed));
        assert_eq!(parse_amount(""), Err(AmountParseError::Malformed));
        assert_eq!(parse_amount(" 1"), Err(AmountParseError::Malformed));
        assert_eq!(parse_amount("1e40"), Err(AmountParseError::TooLarge));
        assert_eq!(
            parse_amount("100000000000000000000000000000000"),
            Err(AmountParseError::TooLarge)
        );
    }

    #[test]
    fn the_value_decides_not_the_spelling() {
        let zeros = "0".repeat(60);
        for zero in [
            "0e99999999999",
            "0e+99999999999",
            "-0E-99999999999999999999999",
            "0.0",
            "-0",
            &format!("0.{zeros}"),
            &format!("{zeros}.{zeros}e7"),
        ] {
            assert_eq!(parse_amount(zero), Ok(Decimal::ZERO), "{zero}");
        }
        assert_eq!(parse_amount(&format!("10.{zeros}")), Ok(d("10")));
        assert_eq!(parse_amount(&format!("{zeros}12.5")), Ok(d("12.5")));
        assert_eq!(parse_amount("1200e-2"), Ok(d("12")));
        assert_eq!(parse_amount("0.000125e4"), Ok(d("1.25")));
        assert_eq!(parse_amount("+5"), Ok(d("5")));
        assert_eq!(parse_amount("1."), Ok(d("1")));
        assert_eq!(parse_amount(".5"), Ok(d("0.5")));
        // The largest and the finest values a decimal holds, however written.
        assert_eq!(
            parse_amount("79228162514264337593543950335"),
            Ok(Decimal::MAX)
        );
        assert_eq!(
            parse_amount("7922816251426433759354395033.5e1"),
            Ok(Decimal::MAX)
        );
        assert_eq!(
            parse_amount(&format!("0.0000000000000000000000000001{zeros}")),
            Ok(d("0.0000000000000000000000000001"))
        );
        assert_eq!(
            parse_amount("1e-28"),
            Ok(d("0.0000000000000000000000000001"))
        );
        // Really too large or too precise stays refused.
        for refused in [
            "79228162514264337593543950336",
            "1e29",
            "1e99999999999",
            "1e-29",
            "0.00000000000000000000000000001",
            "1.00000000000000000000000000001",
        ] {
            assert_eq!(
                parse_amount(refused),
                Err(AmountParseError::TooLarge),
                "{refused}"
            );
        }
        for malformed in [
            ".", "-", "+", "1e", "e5", "1e+", "1.2.3", "--1", "1 ", "0x10", "1e5.5",
        ] {
            assert_eq!(
                parse_amount(malformed),
                Err(AmountParseError::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn money_refuses_mixed_currencies_and_overflow() {
        let usd = Currency::parse("USD").unwrap();
        let eur = Currency::parse("EUR").unwrap();
        let err = Money::new(d("1"), usd)
            .checked_add(Money::new(d("1"), eur))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::CurrencyMismatch);
        let err = Money::new(Decimal::MAX, usd)
            .checked_add(Money::new(d("1"), usd))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::AmountTooLarge);
        assert_eq!(Money::new(d("12.5"), usd).to_string(), "12.50 USD");
    }
}

/// Serde helpers for amounts written as JSON numbers or strings.
pub mod serde_amount {
    use super::{AmountParseError, parse_amount};
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, de};

    /// Deserializes an optional amount from a number, a numeric string or `null`.
    ///
    /// # Errors
    /// The deserializer's error for anything else, or an amount a decimal cannot hold.
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
        let text = match Option::<serde_json::Value>::deserialize(deserializer)? {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s,
            Some(_) => {
                return Err(de::Error::custom(
                    "expected an amount (a number or a numeric string)",
                ));
            }
        };
        match parse_amount(&text) {
            Ok(d) => Ok(Some(d)),
            Err(AmountParseError::TooLarge) => Err(de::Error::custom(format!(
                "amount `{text}` is beyond what a decimal holds"
            ))),
            Err(AmountParseError::Malformed) => {
                Err(de::Error::custom(format!("`{text}` is not a number")))
            }
        }
    }
}
