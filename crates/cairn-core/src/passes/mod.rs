//! Graph-to-graph rewrites, each a named pass that can run on its own.

pub mod fold;
