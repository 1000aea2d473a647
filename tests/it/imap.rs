//! Tests for the imap area.
