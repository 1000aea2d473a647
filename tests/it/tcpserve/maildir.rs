//! maildir-make tests.
