//! Tests for the submit area.
