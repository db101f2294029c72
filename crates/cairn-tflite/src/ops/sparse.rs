//! DENSIFY: its input was expanded when the file was read (see `crate::sparse`); the output
//! is the same constant.

use super::{Call, OpResult};
use crate::builder::Builder;

pub(super) fn densify(b: &mut Builder, c: &Call) -> OpResult {
    let (x, out) = (c.input(0)?, c.output(0)?);
    let dense = b.tensors[x].constant.clone().ok_or_else(|| c.invalid("the input must be constant sparse weights"))?;
    b.tensors[out].constant = Some(dense);
    b.tensors[out].quant = b.tensors[x].quant.clone();
    b.tensors[out].dtype = b.tensors[x].dtype;
    Ok(())
}
