//! (in progress)

pub mod model;
pub use model::*;
