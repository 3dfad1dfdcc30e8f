//! (in progress)

pub mod record;
