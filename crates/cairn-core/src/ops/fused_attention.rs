//! Multi-head attention as encoders export it, in one step: the fusion pass
//! (`passes::attention`) replaces
//!
//! ```text
//! Reshape(q,[0,0,H,D])->Transpose(0,2,1,3)  Reshape(k,..)->Transpose(0,2,3,1)  Reshape(v,..)->Transpose(0,2,1,3)
//!            MatMul -> [Div|Mul by a scalar] -> [Add mask] -> Softmax(last axis) -> MatMul(., v) -> Transpose(0,2,1,3)
//! ```
//!
//! with this op. It reads Q, K and V where the projections wrote them (`[B, S, H*D]`, a head
//! is a column block) instead of transposing them into `[B, H, S, D]` copies, adds the mask
//! in the scores GEMM's epilogue instead of a pass over the scores, and writes each head's
//! output into its column block of `[B, Sq, H, Dv]`, which is the layout the final Transpose
//! produced. The products, the scale (applied while A is packed, as the scaled MatMul does)
//! and the Softmax kernel are the ones the unfused graph runs, so the results agree with it
//! to rounding. Threads take blocks of query rows (all heads of a row block): the output
//! of a block is one contiguous run, and no head's work waits on another's.
//!
//! f16 and bf16 inputs are widened and the output rounded once, as the other float ops do
//! (`float_io`); the unfused graph rounded the scores and probabilities to f16 between steps.

use super::broadcast::{broadcast_shapes, broadcast_strides};
use super::float_io::{check_float, f32_values, write_f32};
use crate::{bail_shape, required, Fact, Op, Result, TensorMut, TensorRef};
use cairn_kernels::{gemm, vmath, Activation, Bias, Epilogue, LhsOperand, MatRef, RhsOperand, Transpose};

const OP: &str = "Attention(fused)";

/// How a projection's `[B, S, H*D]` output was reshaped into heads: `[0, 0, H, D]` or
/// `[0, -1, H, D]` (the only forms the pass accepts: both keep B and give S from the input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeqDim {
    /// `0`: copied from the input's dimension 1 (the input's other dims must hold `H*D`).
    Copied,
    /// `-1`: whatever is left after B, H and D.
    Inferred,
}

#[derive(Debug)]
pub(crate) struct FusedAttention {
    pub(crate) heads: usize,
    /// Head width of Q and K (they must agree for `Q K^T`).
    pub(crate) head_dim: usize,
    /// Head width of V, which may differ.
    pub(crate) value_dim: usize,
    /// How Q, K and V were split into heads.
    pub(crate) seq: [SeqDim; 3],
    /// The scale the scores were divided or multiplied by (1 without one).
    pub(crate) alpha: f32,
    pub(crate) has_mask: bool,
    pub(crate) fused: String,
}

/// Batch and sequence length of one of Q, K, V after its head split.
fn split_heads(shape: &[usize], seq: SeqDim, width: usize, which: &str) -> Result<(usize, usize)> {
    let total: usize = shape.iter().product();
    if shape.len() < 2 || shape[0] == 0 || width == 0 {
        bail_shape!(OP, "{which} {shape:?} cannot be split into heads of {width} values");
    }
    let s = match seq {
        SeqDim::Copied if shape[2..].iter().product::<usize>() == width => shape[1],
        SeqDim::Inferred if total.is_multiple_of(shape[0] * width) => total / (shape[0] * width),
        _ => bail_shape!(OP, "{which} {shape:?} does not reshape to [{}, S, heads, head size] with heads x head size = {width}", shape[0]),
    };
    Ok((shape[0], s))
}

/// Shapes of one run: batch, query and key lengths.
struct Dims {
    b: usize,
    sq: usize,
    sk: usize,
}

impl FusedAttention {
    fn dims(&self, q: &[usize], k: &[usize], v: &[usize], mask: Option<&[usize]>) -> Result<Dims> {
        let (b, sq) = split_heads(q, self.seq[0], self.heads * self.head_dim, "Q")?;
        let (bk, sk) = split_heads(k, self.seq[1], self.heads * self.head_dim, "K")?;
        let (bv, sv) = split_heads(v, self.seq[2], self.heads * self.value_dim, "V")?;
        if bk != b || bv != b || sv != sk {
            bail_shape!(OP, "Q {q:?}, K {k:?} and V {v:?} disagree on batch or key length");
        }
        if let Some(m) = mask {
            let scores = [b, self.heads, sq, sk];
            // The mask must not widen the scores (a broadcast the fused op cannot write).
            if m.len() > 4 || broadcast_shapes(&[&scores, m], OP)? != scores {
                bail_shape!(OP, "mask {m:?} does not broadcast onto the scores {scores:?}");
            }
        }
        Ok(Dims { b, sq, sk })
    }
}

impl Op for FusedAttention {
    fn op_type(&self) -> &str {
        "Attention"
    }

    fn fused(&self) -> &str {
        &self.fused
    }

    fn built_by_pass(&self) -> bool {
        true
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let [q, k, v] = [0, 1, 2].map(|i| required(inputs, i, OP));
        let (q, k, v) = (q?, k?, v?);
        let mask = if self.has_mask { Some(required(inputs, 3, OP)?) } else { None };
        for f in [Some(q), Some(k), Some(v), mask].into_iter().flatten() {
            check_float(f.dtype, OP)?;
            if f.dtype != q.dtype {
                bail_shape!(OP, "inputs mix {} and {}", q.dtype, f.dtype);
            }
        }
        let d = self.dims(&q.shape, &k.shape, &v.shape, mask.map(|m| m.shape.as_slice()))?;
        Ok(vec![Fact::new(q.dtype, vec![d.b, d.sq, self.heads, self.value_dim])])
    }

    fn macs(&self, inputs: &[Option<&Fact>], _outputs: &[Fact]) -> u64 {
        match (inputs[0], inputs[1], inputs[2]) {
            (Some(q), Some(k), Some(v)) => self
                .dims(&q.shape, &k.shape, &v.shape, None)
                .map_or(0, |d| (d.b * self.heads * d.sq * d.sk * (self.head_dim + self.value_dim)) as u64),
            _ => 0,
        }
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let [q, k, v] = [0, 1, 2].map(|i| required(inputs, i, OP));
        let (q, k, v) = (q?, k?, v?);
        let mask = if self.has_mask { Some(required(inputs, 3, OP)?) } else { None };
        let d = self.dims(q.shape, k.shape, v.shape, mask.map(|m| m.shape))?;
        let (qv, kv, vv) = (f32_values(&q, OP)?, f32_values(&k, OP)?, f32_values(&v, OP)?);
        let mask = match mask {
            Some(m) => Some((f32_values(&m, OP)?, broadcast_strides(m.shape, &[d.b, self.heads, d.sq, d.sk]))),
            None => None,
        };
        let mask = mask.as_ref().map(|(values, strides)| MaskRef { values, strides });
        write_f32(&mut outputs[0], OP, |y| {
            self.compute(&d, &qv, &kv, &vv, mask.as_ref(), y);
            Ok(())
        })
    }
}

/// The additive mask and its strides over `[B, H, Sq, Sk]` (0 where it broadcasts).
struct MaskRef<'a> {
    values: &'a [f32],
    strides: &'a [usize],
}

impl FusedAttention {
    fn compute(&self, d: &Dims, q: &[f32], k: &[f32], v: &[f32], mask: Option<&MaskRef>, y: &mut [f32]) {
        let (h, dq, dv) = (self.heads, self.head_dim, self.value_dim);
        let row_len = h * dv;
        if d.sk == 0 {
            // No keys: the probabilities are an empty matrix and every output is a sum of nothing.
            y.fill(0.0);
            return;
        }
        // Rows of the output are (batch, query) pairs; a block may span two batches.
        cairn_kernels::parallel::for_row_blocks(y, row_len, |r0, block| {
            let rows = block.len() / row_len;
            let mut scores_buf = vec![0.0f32; rows.min(d.sq) * d.sk];
            let mut inv_sums = vec![0.0f32; rows.min(d.sq)];
            let mut scratch = Vec::new();
            let mut r = r0;
            while r < r0 + rows {
                let (b, s0) = (r / d.sq, r % d.sq);
                let m = (d.sq - s0).min(r0 + rows - r);
                let out = &mut block[(r - r0) * row_len..];
                for head in 0..h {
                    let scores = &mut scores_buf[..m * d.sk];
                    let q_at = (b * d.sq + s0) * h * dq + head * dq;
                    let k_at = b * d.sk * h * dq + head * dq;
                    let epilogue = mask_epilogue(mask, [b, head, s0], m, d.sk, &mut scratch);
                    gemm(
                        m,
                        d.sk,
                        dq,
                        LhsOperand::Strided { mat: MatRef::new(&q[q_at..], h * dq, Transpose::No), alpha: self.alpha },
                        RhsOperand::Strided(MatRef::new(&k[k_at..], h * dq, Transpose::Yes)),
                        scores,
                        d.sk,
                        false,
                        &epilogue,
                    );
                    // Softmax without its scaling pass: the 1 / sum of each row scales the
                    // row of P V below instead (dv wide rather than Sk).
                    vmath::softmax_rows_unscaled(scores, d.sk, &mut inv_sums[..m]);
                    let v_at = b * d.sk * h * dv + head * dv;
                    gemm(
                        m,
                        dv,
                        d.sk,
                        LhsOperand::Strided { mat: MatRef::new(&*scores, d.sk, Transpose::No), alpha: 1.0 },
                        RhsOperand::Strided(MatRef::new(&v[v_at..], h * dv, Transpose::No)),
                        &mut out[head * dv..],
                        row_len,
                        false,
                        &Epilogue::default(),
                    );
                    vmath::scale_rows(&mut out[head * dv..], row_len, dv, &inv_sums[..m]);
                }
                r += m;
            }
        });
    }
}

/// The scores GEMM's epilogue for `m` query rows from `[b, head, s0]`: the mask as a
/// per-column bias when it does not vary by query (a padding mask `[B, 1, 1, Sk]`, read in
/// place when its keys are contiguous), else as a residual block; `scratch` holds the
/// gathered values when the mask's layout is not one the GEMM can read directly.
fn mask_epilogue<'a>(mask: Option<&'a MaskRef>, [b, head, s0]: [usize; 3], m: usize, sk: usize, scratch: &'a mut Vec<f32>) -> Epilogue<'a> {
    let Some(mask) = mask else { return Epilogue::default() };
    let [sb, sh, sq, sks] = [mask.strides[0], mask.strides[1], mask.strides[2], mask.strides[3]];
    let at = b * sb + head * sh + s0 * sq;
    let gather_row = |row: usize, out: &mut Vec<f32>| out.extend((0..sk).map(|j| mask.values[at + row * sq + j * sks]));
    let activation = Activation::Identity;
    if sq == 0 {
        if sks == 1 {
            return Epilogue { bias: Bias::PerCol(&mask.values[at..at + sk]), residual: None, activation };
        }
        scratch.clear();
        gather_row(0, scratch);
        return Epilogue { bias: Bias::PerCol(scratch), residual: None, activation };
    }
    if sks == 1 && sq >= sk {
        return Epilogue { bias: Bias::None, residual: Some((&mask.values[at..at + (m - 1) * sq + sk], sq)), activation };
    }
    scratch.clear();
    (0..m).for_each(|row| gather_row(row, scratch));
    Epilogue { bias: Bias::None, residual: Some((scratch, sk)), activation }
}
