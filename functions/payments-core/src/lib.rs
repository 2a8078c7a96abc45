//! payments-core: the payment logic of the Lambda functions, as plain, tested Rust — no AWS, no
//! I/O. Amounts are integers in the currency's minor unit; a full card number or CVV never leaves
//! this crate except inside the request it came in: every type holding one redacts it from Debug,
//! and every output (mask, last4, fingerprint) is built so it cannot contain it.

pub mod card;
pub mod fraud;
pub mod migrations;
pub mod money;
pub mod process;
pub mod schemas;
pub mod validate;

pub use card::{Brand, CardNumber};
pub use fraud::{assess, Assessment, Decision, Thresholds};
pub use money::Currency;
pub use validate::{validate, FieldError, PaymentRequest, Validation};
