//! The account's own settings that every stack of the region shares: they carry no suffix and are
//! removed only by the last tapctl stack that uses them.

pub mod controls;
