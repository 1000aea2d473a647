//! relay tests.
