//! Tests for the smtp area.
