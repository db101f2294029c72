//! DENSIFY: sparse constant weights (TFLite's `SparsityParameters`) expanded at import.

use super::{Call, OpResult};
use crate::builder::Builder;

pub(super) fn densify(_b: &mut Builder, c: &Call) -> OpResult {
    Err(c.unsupported("sparse weights"))
}
