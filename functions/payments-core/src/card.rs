//! Cards: the number (digits, spaces allowed), Luhn, brand by IIN range with its lengths and CVV
//! length, masking and HMAC fingerprints. `CardNumber` never shows the number in Debug output.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Diners,
    Jcb,
    Unionpay,
    Unknown,
}

impl Brand {
    /// Valid number lengths (PAN digits) of the brand.
    pub fn lengths(self) -> &'static [usize] {
        match self {
            Brand::Visa => &[13, 16, 19],
            Brand::Mastercard => &[16],
            Brand::Amex => &[15],
            Brand::Discover | Brand::Jcb | Brand::Unionpay => &[16, 17, 18, 19],
            Brand::Diners => &[14, 15, 16, 17, 18, 19],
            Brand::Unknown => &[12, 13, 14, 15, 16, 17, 18, 19],
        }
    }

    /// Length of the card verification code: four digits on the front for Amex, three elsewhere.
    pub fn cvv_length(self) -> usize {
        if self == Brand::Amex {
            4
        } else {
            3
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Discover => "discover",
            Brand::Diners => "diners",
            Brand::Jcb => "jcb",
            Brand::Unionpay => "unionpay",
            Brand::Unknown => "unknown",
        }
    }
}

/// The prefix of `digits` as a number of `n` digits (0 if shorter).
fn prefix(digits: &str, n: usize) -> u32 {
    digits.get(..n).and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// The brand from the issuer identification number (the leading digits), by the networks'
/// published ranges. Discover's UnionPay co-branded range 622126–622925 is Discover's.
pub fn brand_of(digits: &str) -> Brand {
    let (p1, p2, p3, p4, p6) =
        (prefix(digits, 1), prefix(digits, 2), prefix(digits, 3), prefix(digits, 4), prefix(digits, 6));
    if p2 == 34 || p2 == 37 {
        Brand::Amex
    } else if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6) {
        Brand::Discover
    } else if (3528..=3589).contains(&p4) {
        Brand::Jcb
    } else if (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39 {
        Brand::Diners
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        Brand::Mastercard
    } else if p2 == 62 {
        Brand::Unionpay
    } else if p1 == 4 {
        Brand::Visa
    } else {
        Brand::Unknown
    }
}

/// The Luhn (mod 10) check every card number carries in its last digit.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// A card number as digits only. Debug and Display show the mask, never the number.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Digits with optional spaces (as people type them); anything else is refused.
    pub fn parse(input: &str) -> Option<CardNumber> {
        let digits: String = input.chars().filter(|c| *c != ' ').collect();
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(CardNumber(digits))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn brand(&self) -> Brand {
        brand_of(&self.0)
    }

    pub fn luhn_valid(&self) -> bool {
        luhn_valid(&self.0)
    }

    /// The issuer identification number (first six digits), which PCI DSS allows to be used and
    /// shown: the fraud rules look up blocked BINs and the issuing country with it.
    pub fn bin(&self) -> &str {
        &self.0[..self.0.len().min(6)]
    }

    pub fn last4(&self) -> String {
        self.0[self.0.len().saturating_sub(4)..].to_string()
    }

    /// Every digit but the last four replaced: "************4242" (PCI DSS 3.4.1 allows at most
    /// the first six and last four; we show only the last four).
    pub fn masked(&self) -> String {
        format!("{}{}", "*".repeat(self.0.len().saturating_sub(4)), self.last4())
    }

    /// HMAC-SHA256 of the digits under the stack's fingerprint key, hex: the same card always
    /// gives the same fingerprint (velocity rules), and without the key it cannot be reversed
    /// (a plain hash of a 16-digit number can be brute-forced).
    pub fn fingerprint(&self, key: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
        mac.update(self.0.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Test numbers the networks and processors publish.
    const PUBLISHED: &[(&str, Brand)] = &[
        ("4242424242424242", Brand::Visa),
        ("4111111111111111", Brand::Visa),
        ("4012888888881881", Brand::Visa),
        ("4222222222222", Brand::Visa),
        ("5555555555554444", Brand::Mastercard),
        ("5105105105105100", Brand::Mastercard),
        ("2223003122003222", Brand::Mastercard),
        ("378282246310005", Brand::Amex),
        ("371449635398431", Brand::Amex),
        ("6011111111111117", Brand::Discover),
        ("6011000990139424", Brand::Discover),
        ("3056930009020004", Brand::Diners),
        ("36227206271667", Brand::Diners),
        ("3566002020360505", Brand::Jcb),
        ("6200000000000005", Brand::Unionpay),
    ];

    #[test]
    fn published_test_cards_of_every_brand_pass_luhn_and_are_recognised() {
        for (number, brand) in PUBLISHED {
            let card = CardNumber::parse(number).unwrap();
            assert!(card.luhn_valid(), "{number} fails Luhn");
            assert_eq!(card.brand(), *brand, "{number}");
            assert!(brand.lengths().contains(&card.len()), "{number}: length {} not allowed for {brand:?}", card.len());
        }
    }

    #[test]
    fn a_changed_digit_fails_luhn() {
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid("5555555555554445"));
    }

    #[test]
    fn spaces_are_allowed_other_characters_are_not() {
        assert_eq!(CardNumber::parse("4242 4242 4242 4242").unwrap().len(), 16);
        assert!(CardNumber::parse("4242-4242-4242-4242").is_none());
        assert!(CardNumber::parse("   ").is_none());
    }

    #[test]
    fn cvv_lengths_follow_the_brand() {
        assert_eq!(Brand::Amex.cvv_length(), 4);
        assert_eq!(Brand::Visa.cvv_length(), 3);
    }

    #[test]
    fn debug_and_display_never_show_the_number() {
        let card = CardNumber::parse("4242424242424242").unwrap();
        assert_eq!(format!("{card:?}"), "CardNumber(************4242)");
        assert!(!format!("{card}").contains("4242424242424242"));
    }

    #[test]
    fn fingerprints_are_stable_per_key_and_differ_across_keys() {
        let card = CardNumber::parse("4242424242424242").unwrap();
        assert_eq!(card.fingerprint(b"k1"), card.fingerprint(b"k1"));
        assert_ne!(card.fingerprint(b"k1"), card.fingerprint(b"k2"));
        assert_eq!(card.fingerprint(b"k1").len(), 64);
    }

    proptest! {
        #[test]
        fn masks_last4_and_fingerprints_never_contain_the_number(digits in "[0-9]{12,19}", key in proptest::collection::vec(any::<u8>(), 1..64)) {
            let card = CardNumber::parse(&digits).unwrap();
            prop_assert!(!card.masked().contains(&digits));
            prop_assert!(!card.fingerprint(&key).contains(&digits));
            let shown = format!("{:?}", card);
            prop_assert!(!shown.contains(&digits));
            prop_assert_eq!(card.last4().len(), 4);
        }
    }
}
