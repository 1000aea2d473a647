//! Tests for the tcpserve area.
