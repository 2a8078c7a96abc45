//! Integration tests: the real tapctl binary against a local AWS emulator (moto), asserting on
//! what the emulated account holds. One test binary (ripgrep's layout): every test binary links
//! the whole AWS SDK.

mod account_controls;
mod backup;
mod bluegreen;
mod buckets;
mod cli;
mod compute;
mod data;
mod dbaccess;
mod demo;
mod dependencies;
mod events;
mod functions;
mod graph;
mod harness;
mod harness_tests;
mod hygiene;
mod lambda;
mod local;
mod logs;
mod network;
mod operator;
mod packaging;
mod postgres;
mod propagation;
mod readback;
mod resilience;
mod rotation;
mod secret_policies;
mod tls;
mod trail;
mod waf;
