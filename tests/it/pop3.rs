//! Tests for the pop3 area.
