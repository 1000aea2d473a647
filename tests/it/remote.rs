//! Tests for the remote area.
