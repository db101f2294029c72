//! DepthToSpace (DCR and CRD modes) and SpaceToDepth, every dtype. Each is a reshape
//! to 6-D, a transpose and a reshape back (the spec's own definition), done as one
//! gather of precomputed source offsets.

use super::broadcast::contiguous_strides;
use super::indexing::gather_offsets;
use crate::{bail_shape, required, Error, Fact, Op, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("DepthToSpace", |ctx| {
        Ok(Box::new(SpaceDepth { to_space: true, crd: crd_mode(ctx)?, block: block(ctx.int_req("blocksize")?)? }))
    });
    // SpaceToDepth takes `mode` from opset 28 on; before, it is always DCR.
    r.register("SpaceToDepth", |ctx| {
        Ok(Box::new(SpaceDepth { to_space: false, crd: crd_mode(ctx)?, block: block(ctx.int_req("blocksize")?)? }))
    });
}

/// `mode`: DCR (depth-column-row, the default) or CRD.
fn crd_mode(ctx: &crate::OpContext) -> Result<bool> {
    match ctx.string("mode", "DCR")?.as_str() {
        "DCR" => Ok(false),
        "CRD" => Ok(true),
        other => Err(Error::InvalidAttr { attr: "mode".into(), detail: format!("must be DCR or CRD, got '{other}'") }),
    }
}

fn block(b: i64) -> Result<usize> {
    usize::try_from(b)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| Error::InvalidAttr { attr: "blocksize".into(), detail: format!("must be positive, got {b}") })
}

#[derive(Debug)]
struct SpaceDepth {
    to_space: bool,
    crd: bool,
    block: usize,
}

impl SpaceDepth {
    fn name(&self) -> &'static str {
        if self.to_space {
            "DepthToSpace"
        } else {
            "SpaceToDepth"
        }
    }

    /// The 6-D view of the input and the permutation that gives the output's element order.
    fn view(&self, s: &[usize]) -> ([usize; 6], [usize; 6]) {
        let (n, c, h, w, b) = (s[0], s[1], s[2], s[3], self.block);
        match (self.to_space, self.crd) {
            (true, false) => ([n, b, b, c / (b * b), h, w], [0, 3, 4, 1, 5, 2]),
            (true, true) => ([n, c / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3]),
            (false, false) => ([n, c, h / b, b, w / b, b], [0, 3, 5, 1, 2, 4]),
            (false, true) => ([n, c, h / b, b, w / b, b], [0, 1, 3, 5, 2, 4]),
        }
    }
}

/// Source offsets, in output order, of `shape` transposed by `perm`.
fn permuted_offsets(shape: &[usize; 6], perm: &[usize; 6]) -> Vec<usize> {
    let strides = contiguous_strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let out_strides: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let total: usize = shape.iter().product();
    let mut offsets = Vec::with_capacity(total);
    super::broadcast::for_each_offset(&out_shape, [&out_strides], |_, [o]| offsets.push(o));
    offsets
}

impl Op for SpaceDepth {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name())?;
        let b = self.block;
        let Some(&[n, c, h, w]) = x.shape.get(..4).filter(|_| x.rank() == 4) else {
            bail_shape!(self.name(), "needs a 4-D input, got {:?}", x.shape);
        };
        let shape = if self.to_space {
            if c % (b * b) != 0 {
                bail_shape!("DepthToSpace", "{c} channels do not divide by blocksize^2 = {}", b * b);
            }
            vec![n, c / (b * b), h * b, w * b]
        } else {
            if h % b != 0 || w % b != 0 {
                bail_shape!("SpaceToDepth", "spatial dims {h}x{w} do not divide by blocksize {b}");
            }
            vec![n, c * b * b, h / b, w / b]
        };
        crate::checked_numel(&shape)?;
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name())?;
        let (shape, perm) = self.view(x.shape);
        gather_offsets(x.data, &mut outputs[0].data, &permuted_offsets(&shape, &perm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Tensor};

    #[test]
    fn space_to_depth_round_trips_through_dcr_depth_to_space() {
        let x = Tensor::from_i64(vec![1, 1, 2, 2], vec![1, 2, 3, 4]).unwrap();
        let s2d = SpaceDepth { to_space: false, crd: false, block: 2 };
        let mut d = Tensor::zeros(DType::I64, vec![1, 4, 1, 1]).unwrap();
        s2d.run(&[Some(x.view())], &mut [d.view_mut()]).unwrap();
        assert_eq!(d.i64s().unwrap(), &[1, 2, 3, 4]);
        let d2s = SpaceDepth { to_space: true, crd: false, block: 2 };
        let mut back = Tensor::zeros(DType::I64, vec![1, 1, 2, 2]).unwrap();
        d2s.run(&[Some(d.view())], &mut [back.view_mut()]).unwrap();
        assert_eq!(back, x);
    }
}
