//! tapctl: provisions and operates a PCI-minded card-payment stack on AWS by calling the AWS SDK
//! for Rust directly. `stack.rs` is the whole architecture; `engine/` walks it; `resources/` holds
//! one module per AWS resource family; `commands/` are the thin verbs a user types.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod interrupt;
pub mod local;
pub mod names;
pub mod output;
pub mod package;
pub mod resources;
pub mod stack;
pub mod state;
pub mod traffic;
