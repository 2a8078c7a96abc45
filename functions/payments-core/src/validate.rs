//! The `/validate` rules: card number (digits, length for the brand, Luhn), expiry (valid through
//! the last day of its month), CVV length for the brand, currency and amount. Each broken rule is
//! one error with the field, a stable code clients can act on, and a message — none of which
//! ever repeats the card number or the CVV.

use crate::card::{Brand, CardNumber};
use crate::money::Currency;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The body every endpoint takes (the API contract).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub merchant_id: String,
    #[serde(default)]
    pub customer_id: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub card: Card,
    #[serde(default)]
    pub ip_country: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub cvv: String,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the number or the CVV, whatever logs this.
        let last4 = CardNumber::parse(&self.number).map(|c| c.last4()).unwrap_or_default();
        write!(f, "Card {{ last4: {last4:?}, exp: {:02}/{}, cvv: <redacted> }}", self.exp_month, self.exp_year)
    }
}

impl fmt::Debug for PaymentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentRequest")
            .field("merchant_id", &self.merchant_id)
            .field("amount", &self.amount)
            .field("currency", &self.currency)
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

/// The `/validate` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validation {
    pub valid: bool,
    pub brand: Brand,
    pub last4: String,
    pub fingerprint: String,
    pub errors: Vec<FieldError>,
}

/// The limits that come from Parameter Store.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_amount_minor: i64,
    pub allowed_currencies: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_amount_minor: 10_000_000,
            allowed_currencies: ["USD", "EUR", "GBP", "JPY", "KWD", "CAD", "AUD", "CHF"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

fn err(field: &'static str, code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field, code, message: message.into() }
}

/// Expiry: a card is valid through the last day of its expiry month.
pub fn check_expiry(month: u32, year: i32, today: NaiveDate) -> Option<FieldError> {
    if !(1..=12).contains(&month) {
        return Some(err("card.exp_month", "invalid_expiry", "the expiry month must be 1 to 12"));
    }
    if !(1000..=9999).contains(&year) {
        return Some(err("card.exp_year", "invalid_expiry", "the expiry year must have four digits"));
    }
    if (year, month) < (today.year(), today.month()) {
        return Some(err("card.exp_year", "expired", "the card has expired"));
    }
    if year > today.year() + 20 {
        return Some(err("card.exp_year", "invalid_expiry", "the expiry is more than 20 years away"));
    }
    None
}

pub fn validate(req: &PaymentRequest, today: NaiveDate, fingerprint_key: &[u8], limits: &Limits) -> Validation {
    let mut errors = Vec::new();
    let card = CardNumber::parse(&req.card.number);
    let brand = card.as_ref().map(CardNumber::brand).unwrap_or(Brand::Unknown);
    match &card {
        None => errors.push(err("card.number", "invalid_number", "the card number must be digits (spaces allowed)")),
        Some(c) if !brand.lengths().contains(&c.len()) => errors.push(err(
            "card.number",
            "invalid_length",
            format!("a {} card number has {:?} digits, not {}", brand.as_str(), brand.lengths(), c.len()),
        )),
        Some(c) if !c.luhn_valid() => {
            errors.push(err("card.number", "luhn_failed", "the card number fails its check digit"))
        }
        Some(_) => {}
    }
    errors.extend(check_expiry(req.card.exp_month, req.card.exp_year, today));
    let cvv_ok = req.card.cvv.len() == brand.cvv_length() && req.card.cvv.bytes().all(|b| b.is_ascii_digit());
    let cvv_ok = cvv_ok
        || (brand == Brand::Unknown
            && (3..=4).contains(&req.card.cvv.len())
            && req.card.cvv.bytes().all(|b| b.is_ascii_digit()));
    if !cvv_ok {
        errors.push(err(
            "card.cvv",
            "invalid_cvv",
            format!("the CVV of a {} card has {} digits", brand.as_str(), brand.cvv_length()),
        ));
    }
    match Currency::from_code(&req.currency) {
        Some(c) if limits.allowed_currencies.iter().any(|a| a == c.code) => {}
        _ => errors.push(err(
            "currency",
            "unsupported_currency",
            format!("currency '{}' is not accepted", req.currency.chars().take(8).collect::<String>()),
        )),
    }
    if req.amount <= 0 {
        errors.push(err("amount", "invalid_amount", "the amount must be a positive integer in minor units"));
    } else if req.amount > limits.max_amount_minor {
        errors.push(err(
            "amount",
            "amount_over_limit",
            format!("the amount is over the limit of {} minor units", limits.max_amount_minor),
        ));
    }
    Validation {
        valid: errors.is_empty(),
        brand,
        last4: card.as_ref().map(CardNumber::last4).unwrap_or_default(),
        fingerprint: card.as_ref().map(|c| c.fingerprint(fingerprint_key)).unwrap_or_default(),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
    }

    fn request(number: &str, month: u32, year: i32, cvv: &str, amount: i64, currency: &str) -> PaymentRequest {
        PaymentRequest {
            merchant_id: "m-1".into(),
            customer_id: None,
            amount,
            currency: currency.into(),
            card: Card { number: number.into(), exp_month: month, exp_year: year, cvv: cvv.into() },
            ip_country: None,
            description: None,
        }
    }

    fn codes(v: &Validation) -> Vec<&'static str> {
        v.errors.iter().map(|e| e.code).collect()
    }

    #[test]
    fn a_good_card_is_valid_with_brand_last4_and_fingerprint() {
        let v =
            validate(&request("4242 4242 4242 4242", 12, 2030, "123", 1000, "USD"), today(), b"k", &Limits::default());
        assert!(v.valid, "{:?}", v.errors);
        assert_eq!((v.brand, v.last4.as_str()), (Brand::Visa, "4242"));
        assert_eq!(v.fingerprint.len(), 64);
    }

    #[test]
    fn a_card_is_valid_through_the_last_day_of_its_expiry_month() {
        assert_eq!(check_expiry(11, 2026, today()), None, "November 2026 is still good on 24 November");
        assert_eq!(check_expiry(11, 2026, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()), None);
        assert_eq!(
            check_expiry(11, 2026, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()).map(|e| e.code),
            Some("expired")
        );
        assert_eq!(
            check_expiry(12, 2025, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()).map(|e| e.code),
            Some("expired")
        );
        assert_eq!(check_expiry(13, 2027, today()).map(|e| e.code), Some("invalid_expiry"));
        assert_eq!(check_expiry(0, 2027, today()).map(|e| e.code), Some("invalid_expiry"));
        assert_eq!(check_expiry(1, 27, today()).map(|e| e.code), Some("invalid_expiry"));
    }

    #[test]
    fn each_broken_rule_has_its_code() {
        let l = Limits::default();
        assert_eq!(
            codes(&validate(&request("4242424242424241", 12, 2030, "123", 1, "USD"), today(), b"k", &l)),
            ["luhn_failed"]
        );
        assert_eq!(
            codes(&validate(&request("42424242424242", 12, 2030, "123", 1, "USD"), today(), b"k", &l)),
            ["invalid_length"]
        );
        assert_eq!(
            codes(&validate(&request("378282246310005", 12, 2030, "123", 1, "USD"), today(), b"k", &l)),
            ["invalid_cvv"]
        );
        assert_eq!(
            codes(&validate(&request("378282246310005", 12, 2030, "1234", 1, "USD"), today(), b"k", &l)),
            Vec::<&str>::new()
        );
        assert_eq!(
            codes(&validate(&request("4242424242424242", 12, 2030, "123", 1, "XYZ"), today(), b"k", &l)),
            ["unsupported_currency"]
        );
        assert_eq!(
            codes(&validate(&request("4242424242424242", 12, 2030, "123", 0, "USD"), today(), b"k", &l)),
            ["invalid_amount"]
        );
        assert_eq!(
            codes(&validate(&request("4242424242424242", 12, 2030, "123", 10_000_001, "USD"), today(), b"k", &l)),
            ["amount_over_limit"]
        );
        assert_eq!(
            codes(&validate(&request("4242424242424242", 10, 2026, "123", 1, "USD"), today(), b"k", &l)),
            ["expired"]
        );
    }

    #[test]
    fn amounts_are_minor_units_of_zero_two_and_three_decimal_currencies() {
        let l = Limits::default();
        for (currency, amount) in [("JPY", 1500), ("USD", 1500), ("KWD", 1500)] {
            assert!(
                validate(&request("4242424242424242", 12, 2030, "123", amount, currency), today(), b"k", &l).valid,
                "{currency}"
            );
        }
    }

    #[test]
    fn debug_output_of_a_request_never_holds_the_number_or_the_cvv() {
        let r = request("4242424242424242", 12, 2030, "987", 1, "USD");
        let shown = format!("{r:?}");
        assert!(!shown.contains("4242424242424242") && !shown.contains("987"), "{shown}");
    }

    proptest! {
        /// Every 12–20 digit input is either valid or gets a specific card-number error code.
        #[test]
        fn every_12_to_20_digit_number_is_valid_or_has_a_specific_error(digits in "[0-9]{12,20}") {
            let v = validate(&request(&digits, 12, 2030, "1234", 100, "USD"), today(), b"k", &Limits::default());
            let number_errors: Vec<&str> = v.errors.iter().filter(|e| e.field == "card.number").map(|e| e.code).collect();
            let card = CardNumber::parse(&digits).unwrap();
            if card.brand().lengths().contains(&card.len()) && card.luhn_valid() {
                prop_assert!(number_errors.is_empty());
            } else {
                prop_assert_eq!(number_errors.len(), 1);
                prop_assert!(["invalid_length", "luhn_failed"].contains(&number_errors[0]));
            }
            let json = serde_json::to_string(&v).unwrap();
            prop_assert!(!json.contains(&digits), "the response never holds the number");
        }
    }
}
