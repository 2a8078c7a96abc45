//! Money: ISO 4217 currencies with their minor-unit exponent, amounts as integers in minor units
//! (never floats: 0.1 + 0.2 is not 0.3 in binary floating point, and a ledger must add up).

/// A currency tapctl's functions accept, with its ISO 4217 exponent (digits after the point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    pub code: &'static str,
    pub exponent: u32,
}

/// ISO 4217 currencies with their exponents: most have 2; JPY, KRW, ISK, CLP, VND… 0; KWD, BHD,
/// JOD, OMR, TND 3.
pub const CURRENCIES: &[Currency] = &[
    Currency { code: "USD", exponent: 2 },
    Currency { code: "EUR", exponent: 2 },
    Currency { code: "GBP", exponent: 2 },
    Currency { code: "CAD", exponent: 2 },
    Currency { code: "AUD", exponent: 2 },
    Currency { code: "CHF", exponent: 2 },
    Currency { code: "SEK", exponent: 2 },
    Currency { code: "NOK", exponent: 2 },
    Currency { code: "DKK", exponent: 2 },
    Currency { code: "PLN", exponent: 2 },
    Currency { code: "MXN", exponent: 2 },
    Currency { code: "BRL", exponent: 2 },
    Currency { code: "INR", exponent: 2 },
    Currency { code: "SGD", exponent: 2 },
    Currency { code: "HKD", exponent: 2 },
    Currency { code: "NZD", exponent: 2 },
    Currency { code: "ZAR", exponent: 2 },
    Currency { code: "JPY", exponent: 0 },
    Currency { code: "KRW", exponent: 0 },
    Currency { code: "ISK", exponent: 0 },
    Currency { code: "CLP", exponent: 0 },
    Currency { code: "VND", exponent: 0 },
    Currency { code: "KWD", exponent: 3 },
    Currency { code: "BHD", exponent: 3 },
    Currency { code: "JOD", exponent: 3 },
    Currency { code: "OMR", exponent: 3 },
    Currency { code: "TND", exponent: 3 },
];

impl Currency {
    /// The currency of an ISO 4217 code (upper case, as the API contract says).
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.code == code)
    }

    /// "12.34" for 1234 USD, "1234" for 1234 JPY, "1.234" for 1234 KWD: for people, never for sums.
    pub fn format(&self, minor: i64) -> String {
        if self.exponent == 0 {
            return minor.to_string();
        }
        let unit = 10_i64.pow(self.exponent);
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        format!("{sign}{}.{:0width$}", abs / unit as u64, abs % unit as u64, width = self.exponent as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_two_and_three_decimal_currencies_format_by_their_exponent() {
        assert_eq!(Currency::from_code("JPY").unwrap().format(1234), "1234");
        assert_eq!(Currency::from_code("USD").unwrap().format(1234), "12.34");
        assert_eq!(Currency::from_code("USD").unwrap().format(5), "0.05");
        assert_eq!(Currency::from_code("KWD").unwrap().format(1234), "1.234");
        assert_eq!(Currency::from_code("KWD").unwrap().format(7), "0.007");
    }

    #[test]
    fn codes_are_iso_upper_case_and_unknown_ones_are_refused() {
        assert!(Currency::from_code("usd").is_none());
        assert!(Currency::from_code("XXX").is_none());
        assert!(CURRENCIES.iter().all(|c| c.code.len() == 3 && c.code.chars().all(|ch| ch.is_ascii_uppercase())));
    }
}
