//! Tests for the queuerun area.
