//! Integration tests: they run the built programs (one crate, one module
//! per area, to keep the link step short on small machines).

mod common;
mod inject;
