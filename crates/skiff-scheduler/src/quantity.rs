//! Parsing of Kubernetes resource quantities such as `100m`, `1.5Gi` or `1e3`.
//!
//! Quantities are held exactly (no floating point) as thousandths of the base
//! unit, which is enough precision for every unit the scheduler compares:
//! millicores for cpu and whole units (bytes, pods, devices) for the rest.

use thiserror::Error;

/// Why a quantity string could not be parsed.
///
/// Every malformed input maps to one of these variants; parsing never panics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The string was empty.
    #[error("quantity is empty")]
    Empty,
    /// The leading number was missing or malformed (e.g. `abc`, `1.2.3`, `.`).
    #[error("quantity {0:?} does not start with a valid number")]
    InvalidNumber(String),
    /// The number was followed by something that is not a known suffix.
    #[error("quantity {input:?} has unknown suffix {suffix:?}")]
    InvalidSuffix {
        /// The full input.
        input: String,
        /// The unrecognised trailing part.
        suffix: String,
    },
    /// The value does not fit the range the scheduler can represent exactly.
    #[error("quantity {0:?} is out of range")]
    OutOfRange(String),
}

/// A parsed quantity, stored as thousandths of its base unit.
///
/// Values finer than a thousandth are rounded away from zero, matching the
/// way Kubernetes rounds `MilliValue()` up so that a tiny request never
/// becomes free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ParsedQuantity {
    milli: i128,
}

impl ParsedQuantity {
    /// Builds a quantity from a number of thousandths of the base unit.
    pub fn from_milli(milli: i128) -> Self {
        Self { milli }
    }

    /// The value in thousandths of the base unit (millicores for cpu).
    pub fn milli_value(self) -> i128 {
        self.milli
    }

    /// The value in whole base units (bytes for memory), rounded away from zero.
    pub fn value(self) -> i128 {
        let magnitude = self.milli.unsigned_abs().div_ceil(1000);
        // The magnitude came from an i128 divided by 1000, so it always fits.
        let magnitude = i128::try_from(magnitude).unwrap_or(i128::MAX);
        if self.milli < 0 {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// How the suffix scales the written number.
enum Scale {
    /// Multiply by `10^exponent`.
    Decimal(i64),
    /// Multiply by `2^exponent`.
    Binary(u32),
}

/// Parses a Kubernetes quantity string.
///
/// Accepted forms: an optional sign, digits with an optional fraction, then
/// either nothing, a decimal SI suffix (`m`, `k`, `M`, `G`, `T`, `P`, `E`), a
/// binary suffix (`Ki` … `Ei`) or a decimal exponent (`e3`, `E-2`).
/// Whitespace is not accepted anywhere, as in Kubernetes.
pub fn parse_quantity(input: &str) -> Result<ParsedQuantity, QuantityError> {
    if input.is_empty() {
        return Err(QuantityError::Empty);
    }
    let invalid_number = || QuantityError::InvalidNumber(input.to_string());
    let out_of_range = || QuantityError::OutOfRange(input.to_string());

    let (negative, unsigned) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input.strip_prefix('+').unwrap_or(input)),
    };

    let number_len = unsigned.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = unsigned.split_at(number_len);
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err(invalid_number());
    }
    // Trailing zeros in the fraction carry no value but would cost precision.
    let fraction = fraction.trim_end_matches('0');

    let mut mantissa: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa =
            mantissa.checked_mul(10).and_then(|m| m.checked_add(u128::from(digit - b'0'))).ok_or_else(out_of_range)?;
    }

    let scale = parse_suffix(input, suffix)?;
    let fraction_digits = i64::try_from(fraction.len()).map_err(|_| out_of_range())?;

    // value * 1000 = mantissa * 2^binary * 10^(decimal + 3 - fraction_digits)
    let (binary, decimal) = match scale {
        Scale::Decimal(exp) => (0, exp),
        Scale::Binary(exp) => (exp, 0),
    };
    let ten_exponent = decimal.checked_add(3 - fraction_digits).ok_or_else(out_of_range)?;

    let magnitude = if mantissa == 0 {
        0
    } else {
        let mut scaled = mantissa.checked_mul(1u128 << binary).ok_or_else(out_of_range)?;
        if ten_exponent >= 0 {
            let exp = u32::try_from(ten_exponent).map_err(|_| out_of_range())?;
            let factor = 10u128.checked_pow(exp).ok_or_else(out_of_range)?;
            scaled = scaled.checked_mul(factor).ok_or_else(out_of_range)?;
        } else {
            // Dividing one decimal place at a time keeps huge negative
            // exponents cheap: once the value reaches 1 it stays 1 under
            // ceiling division, so the loop stops early.
            let mut remaining = ten_exponent.unsigned_abs();
            while remaining > 0 && scaled > 1 {
                scaled = scaled.div_ceil(10);
                remaining -= 1;
            }
        }
        scaled
    };

    let milli = i128::try_from(magnitude).map_err(|_| out_of_range())?;
    Ok(ParsedQuantity::from_milli(if negative { -milli } else { milli }))
}

fn parse_suffix(input: &str, suffix: &str) -> Result<Scale, QuantityError> {
    let scale = match suffix {
        "" => Scale::Decimal(0),
        "m" => Scale::Decimal(-3),
        "k" => Scale::Decimal(3),
        "M" => Scale::Decimal(6),
        "G" => Scale::Decimal(9),
        "T" => Scale::Decimal(12),
        "P" => Scale::Decimal(15),
        "E" => Scale::Decimal(18),
        "Ki" => Scale::Binary(10),
        "Mi" => Scale::Binary(20),
        "Gi" => Scale::Binary(30),
        "Ti" => Scale::Binary(40),
        "Pi" => Scale::Binary(50),
        "Ei" => Scale::Binary(60),
        other => {
            // A bare "E" is exa (handled above); "e3"/"E-2" is an exponent.
            let exponent = other.strip_prefix('e').or_else(|| other.strip_prefix('E'));
            match exponent.and_then(parse_exponent) {
                Some(exp) => Scale::Decimal(exp),
                None => {
                    return Err(QuantityError::InvalidSuffix { input: input.to_string(), suffix: suffix.to_string() })
                }
            }
        }
    };
    Ok(scale)
}

fn parse_exponent(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Absurd exponents are clamped; the caller reports them as out of range
    // (positive) or rounds them to the smallest unit (negative).
    let magnitude: i64 = digits.parse().unwrap_or(i64::from(i32::MAX)).min(i64::from(i32::MAX));
    Some(if text.starts_with('-') { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> i128 {
        parse_quantity(s).expect("test fixture").milli_value()
    }

    fn value(s: &str) -> i128 {
        parse_quantity(s).expect("test fixture").value()
    }

    #[test]
    fn plain_and_decimal_si_suffixes() {
        assert_eq!(milli("1"), 1000);
        assert_eq!(milli("100m"), 100);
        assert_eq!(milli("0.5"), 500);
        assert_eq!(milli("2.5"), 2500);
        assert_eq!(value("1k"), 1000);
        assert_eq!(value("1M"), 1_000_000);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("1T"), 1_000_000_000_000);
        assert_eq!(value("1P"), 1_000_000_000_000_000);
        assert_eq!(value("2E"), 2_000_000_000_000_000_000);
        assert_eq!(value("+3"), 3);
        assert_eq!(value(".5k"), 500);
        assert_eq!(value("5."), 5);
    }

    #[test]
    fn binary_suffixes() {
        assert_eq!(value("1Ki"), 1024);
        assert_eq!(value("128Mi"), 128 * 1024 * 1024);
        assert_eq!(value("1.5Gi"), 1536 * 1024 * 1024);
        assert_eq!(value("1Ti"), 1 << 40);
        assert_eq!(value("1Pi"), 1 << 50);
        assert_eq!(value("1Ei"), 1 << 60);
    }

    #[test]
    fn decimal_exponents() {
        assert_eq!(value("1e3"), 1000);
        assert_eq!(value("1E3"), 1000);
        assert_eq!(value("1e+3"), 1000);
        assert_eq!(milli("5e-1"), 500);
        assert_eq!(milli("12e-3"), 12);
    }

    #[test]
    fn sub_unit_values_round_up() {
        // 0.5 millicore still reserves a whole millicore.
        assert_eq!(milli("0.5m"), 1);
        // 100m bytes of memory is a whole byte.
        assert_eq!(value("100m"), 1);
        assert_eq!(milli("1e-400"), 1);
        assert_eq!(milli("0e-400"), 0);
        assert_eq!(value("0"), 0);
    }

    #[test]
    fn negative_values() {
        assert_eq!(milli("-100m"), -100);
        assert_eq!(value("-1Ki"), -1024);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert_eq!(parse_quantity(""), Err(QuantityError::Empty));
        assert!(matches!(parse_quantity("abc"), Err(QuantityError::InvalidNumber(_))));
        assert!(matches!(parse_quantity("."), Err(QuantityError::InvalidNumber(_))));
        assert!(matches!(parse_quantity("1.2.3"), Err(QuantityError::InvalidNumber(_))));
        assert!(matches!(parse_quantity("-"), Err(QuantityError::InvalidNumber(_))));
        assert!(matches!(parse_quantity("1 Gi"), Err(QuantityError::InvalidSuffix { .. })));
        assert!(matches!(parse_quantity("1Gb"), Err(QuantityError::InvalidSuffix { .. })));
        assert!(matches!(parse_quantity("1ki"), Err(QuantityError::InvalidSuffix { .. })));
        assert!(matches!(parse_quantity("1e"), Err(QuantityError::InvalidSuffix { .. })));
        assert!(matches!(parse_quantity("1e1.5"), Err(QuantityError::InvalidSuffix { .. })));
        assert!(matches!(parse_quantity(" 1"), Err(QuantityError::InvalidNumber(_))));
        assert!(matches!(parse_quantity("1e400"), Err(QuantityError::OutOfRange(_))));
        assert!(matches!(parse_quantity("1e99999999999999999999"), Err(QuantityError::OutOfRange(_))));
        assert!(matches!(
            parse_quantity("99999999999999999999999999999999999999999"),
            Err(QuantityError::OutOfRange(_))
        ));
        // Non-ASCII input must not trip byte slicing.
        assert!(parse_quantity("1µ").is_err());
        assert!(parse_quantity("é").is_err());
    }

    #[test]
    fn no_short_input_panics() {
        // Exhaustively tries every string of up to four characters over an
        // alphabet of digits, signs, suffix letters and junk.
        let alphabet = ['0', '9', '.', '-', '+', 'e', 'E', 'm', 'k', 'K', 'i', 'G', 'x', ' ', 'µ'];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> =
                inputs.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            for input in &longer {
                let _ = parse_quantity(input);
            }
            inputs = longer;
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let err = parse_quantity("12xyz").expect_err("must fail");
        assert_eq!(err.to_string(), "quantity \"12xyz\" has unknown suffix \"xyz\"");
    }
}
