//! # tabir-client (in progress)
