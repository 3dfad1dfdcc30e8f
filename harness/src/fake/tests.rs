//! Tests of the fake backend.
