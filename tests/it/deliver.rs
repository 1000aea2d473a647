//! Tests for the deliver area.
