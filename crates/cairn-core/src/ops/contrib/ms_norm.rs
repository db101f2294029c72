//! Normalizations the transformer optimizer fuses: SkipLayerNormalization (residual add,
//! bias and LayerNorm in one), its RMS twins, SimplifiedLayerNormalization (RMSNorm) and
//! EmbedLayerNormalization (BERT's three embedding lookups, their sum and LayerNorm).

use super::{last_axis_vector, MS_DOMAIN};
use crate::{bail_shape, required, DType, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register_in(MS_DOMAIN, "SkipLayerNormalization", |ctx| build_skip(ctx, Norm::Layer));
    r.register_in(MS_DOMAIN, "SkipSimplifiedLayerNormalization", |ctx| build_skip(ctx, Norm::Rms));
    // onnxruntime registers SimplifiedLayerNormalization in the default domain, and files
    // carry it there; some converters write it under com.microsoft.
    for domain in ["", MS_DOMAIN] {
        r.register_in(domain, "SimplifiedLayerNormalization", |ctx| {
            ctx.ignore("stash_type");
            Ok(Box::new(SimplifiedNorm { axis: ctx.int("axis", -1)?, epsilon: ctx.float("epsilon", 1e-5)? }))
        });
    }
    r.register_in(MS_DOMAIN, "EmbedLayerNormalization", |ctx| {
        if ctx.int("mask_index_type", 1)? != 1 {
            return Err(ctx.unsupported("mask_index_type", "only 1 (a mask index per batch row) is implemented"));
        }
        Ok(Box::new(EmbedNorm { epsilon: ctx.float("epsilon", 1e-12)? }))
    });
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Norm {
    /// (x - mean) / sqrt(var + eps) * gamma + beta.
    Layer,
    /// x / sqrt(mean(x^2) + eps) * gamma (RMSNorm).
    Rms,
}

/// Normalizes one row into `y`; returns (mean, 1 / std). Accumulates in f64.
fn normalize_row(norm: Norm, x: &[f32], y: &mut [f32], eps: f32, gamma: &[f32], beta: Option<&[f32]>) -> (f32, f32) {
    let n = x.len().max(1) as f64;
    let mean = if norm == Norm::Layer { x.iter().map(|&v| v as f64).sum::<f64>() / n } else { 0.0 };
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps as f64).sqrt();
    for (c, (o, &v)) in y.iter_mut().zip(x).enumerate() {
        *o = ((v as f64 - mean) * inv) as f32 * gamma[c] + beta.map_or(0.0, |b| b[c]);
    }
    (mean as f32, inv as f32)
}

fn build_skip(ctx: &OpContext, norm: Norm) -> Result<Box<dyn Op>> {
    Ok(Box::new(SkipNorm { norm, epsilon: ctx.float("epsilon", 1e-12)? }))
}

/// Inputs: input, skip, gamma, then beta and bias (LayerNorm) or bias (RMS).
/// Outputs: output, mean, inv_std_var, input_skip_bias_sum (the last three optional).
#[derive(Debug)]
struct SkipNorm {
    norm: Norm,
    epsilon: f32,
}

impl SkipNorm {
    fn name(&self) -> &'static str {
        match self.norm {
            Norm::Layer => "SkipLayerNormalization",
            Norm::Rms => "SkipSimplifiedLayerNormalization",
        }
    }
    fn beta_bias_slots(&self) -> (Option<usize>, usize) {
        match self.norm {
            Norm::Layer => (Some(3), 4),
            Norm::Rms => (None, 3),
        }
    }
}

impl Op for SkipNorm {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name())?;
        let skip = required(inputs, 1, self.name())?;
        if x.dtype != DType::F32 || x.rank() < 2 {
            bail_shape!(self.name(), "input must be float32 of rank 2 or 3, got {} {:?}", x.dtype, x.shape);
        }
        if skip.numel() == 0 || x.numel() % skip.numel() != 0 || skip.shape.last() != x.shape.last() {
            bail_shape!(self.name(), "skip {:?} must match input {:?} (or repeat over its batch)", skip.shape, x.shape);
        }
        let mut stat = x.shape.clone();
        *stat.last_mut().expect("rank >= 2") = 1;
        Ok(vec![
            Fact::new(DType::F32, x.shape.clone()),
            Fact::new(DType::F32, stat.clone()),
            Fact::new(DType::F32, stat),
            Fact::new(DType::F32, x.shape.clone()),
        ])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let name = self.name();
        let x = required(inputs, 0, name)?;
        let h = *x.shape.last().unwrap_or(&1);
        let xs = x.f32s()?;
        let skip = required(inputs, 1, name)?.f32s()?;
        let gamma = last_axis_vector(required(inputs, 2, name)?, h, name, "gamma")?;
        let (beta_slot, bias_slot) = self.beta_bias_slots();
        let optional = |i: Option<usize>, what| -> Result<Option<&[f32]>> {
            i.and_then(|i| inputs.get(i).copied().flatten()).map(|t| last_axis_vector(t, h, name, what)).transpose()
        };
        let beta = optional(beta_slot, "beta")?;
        let bias = optional(Some(bias_slot), "bias")?;
        let mut sum = vec![0.0f32; xs.len()];
        for (i, s) in sum.iter_mut().enumerate() {
            *s = xs[i] + skip[i % skip.len()] + bias.map_or(0.0, |b| b[i % h]);
        }
        let mut stats = Vec::with_capacity(xs.len() / h.max(1));
        {
            let y = outputs[0].f32s_mut()?;
            for (row, out) in sum.chunks(h.max(1)).zip(y.chunks_mut(h.max(1))) {
                stats.push(normalize_row(self.norm, row, out, self.epsilon, gamma, beta));
            }
        }
        if let Some(mean) = outputs.get_mut(1) {
            mean.f32s_mut()?.iter_mut().zip(&stats).for_each(|(m, s)| *m = s.0);
        }
        if let Some(inv) = outputs.get_mut(2) {
            inv.f32s_mut()?.iter_mut().zip(&stats).for_each(|(m, s)| *m = s.1);
        }
        if let Some(out) = outputs.get_mut(3) {
            out.f32s_mut()?.copy_from_slice(&sum);
        }
        Ok(())
    }
}

/// RMSNorm over the axes from `axis` on. Outputs: Y, inv_std_var (optional).
#[derive(Debug)]
struct SimplifiedNorm {
    axis: i64,
    epsilon: f32,
}

impl Op for SimplifiedNorm {
    fn op_type(&self) -> &str {
        "SimplifiedLayerNormalization"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.op_type())?;
        let axis = crate::normalize_axis(self.axis, x.rank(), self.op_type())?;
        let mut stat = x.shape.clone();
        stat[axis..].iter_mut().for_each(|d| *d = 1);
        Ok(vec![Fact::new(DType::F32, x.shape.clone()), Fact::new(DType::F32, stat)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let axis = crate::normalize_axis(self.axis, x.rank(), self.op_type())?;
        let inner: usize = x.shape[axis..].iter().product();
        let scale = required(inputs, 1, self.op_type())?.f32s()?;
        if scale.len() != inner {
            bail_shape!(self.op_type(), "scale has {} values but the normalized block has {inner}", scale.len());
        }
        let mut inv = Vec::new();
        for (row, out) in x.f32s()?.chunks(inner.max(1)).zip(outputs[0].f32s_mut()?.chunks_mut(inner.max(1))) {
            inv.push(normalize_row(Norm::Rms, row, out, self.epsilon, scale, None).1);
        }
        if let Some(o) = outputs.get_mut(1) {
            o.f32s_mut()?.copy_from_slice(&inv);
        }
        Ok(())
    }
}

/// BERT embeddings: word[input_ids] + position[position_ids or 0..S] + segment[segment_ids],
/// then LayerNorm. Outputs: output [B,S,H], mask_index [B] (int32: ones in each mask row,
/// zeros without a mask, as onnxruntime), embedding_sum (optional, before the LayerNorm).
#[derive(Debug)]
struct EmbedNorm {
    epsilon: f32,
}

const EMBED: &str = "EmbedLayerNormalization";

/// Row `id` of a [rows, h] table, or an error naming the table (ids come from user input).
fn table_row<'a>(table: &'a [f32], h: usize, id: i64, what: &str) -> Result<&'a [f32]> {
    let rows = table.len() / h.max(1);
    usize::try_from(id)
        .ok()
        .filter(|&i| i < rows)
        .map(|i| &table[i * h..(i + 1) * h])
        .ok_or_else(|| Error::shape(EMBED, format!("{what} id {id} is outside its table of {rows} rows")))
}

impl Op for EmbedNorm {
    fn op_type(&self) -> &str {
        EMBED
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let ids = required(inputs, 0, EMBED)?;
        let word = required(inputs, 2, EMBED)?;
        if ids.rank() != 2 || word.rank() != 2 {
            bail_shape!(
                EMBED,
                "input_ids must be [batch, sequence] and word_embedding [vocab, hidden], got {:?} and {:?}",
                ids.shape,
                word.shape
            );
        }
        let (b, s, h) = (ids.shape[0], ids.shape[1], word.shape[1]);
        Ok(vec![Fact::new(DType::F32, vec![b, s, h]), Fact::new(DType::I32, vec![b]), Fact::new(DType::F32, vec![b, s, h])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let ids_t = required(inputs, 0, EMBED)?;
        let (b, s) = (ids_t.shape[0], ids_t.shape[1]);
        let ids = ids_t.to_i64_vec()?;
        let segments = inputs.get(1).copied().flatten().map(|t| t.to_i64_vec()).transpose()?;
        let word_t = required(inputs, 2, EMBED)?;
        let h = word_t.shape[1];
        let word = word_t.f32s()?;
        let position = required(inputs, 3, EMBED)?.f32s()?;
        let segment = inputs.get(4).copied().flatten().map(|t| t.f32s()).transpose()?;
        let gamma = last_axis_vector(required(inputs, 5, EMBED)?, h, EMBED, "gamma")?;
        let beta = last_axis_vector(required(inputs, 6, EMBED)?, h, EMBED, "beta")?;
        let mask = inputs.get(7).copied().flatten().map(|t| t.to_i64_vec()).transpose()?;
        let position_ids = inputs.get(8).copied().flatten().map(|t| t.to_i64_vec()).transpose()?;
        let per_token = |v: &Option<Vec<i64>>, what: &str, allow_row: bool| -> Result<()> {
            match v {
                Some(v) if v.len() != b * s && !(allow_row && v.len() == s) => {
                    bail_shape!(EMBED, "{what} has {} values for {b}x{s} tokens", v.len())
                }
                _ => Ok(()),
            }
        };
        per_token(&segments, "segment_ids", false)?;
        per_token(&mask, "mask", false)?;
        per_token(&position_ids, "position_ids", true)?;
        let mut sum = vec![0.0f32; b * s * h];
        for (token, out) in sum.chunks_mut(h.max(1)).enumerate() {
            let pos = match &position_ids {
                // [1, S] repeats over the batch; [B, S] is per token.
                Some(p) => p[token % p.len().max(1)],
                None => (token % s) as i64,
            };
            let w = table_row(word, h, ids[token], "input")?;
            let p = table_row(position, h, pos, "position")?;
            let seg = match (&segments, segment) {
                (Some(ids), Some(table)) => Some(table_row(table, h, ids[token], "segment")?),
                _ => None,
            };
            for c in 0..h {
                out[c] = w[c] + p[c] + seg.map_or(0.0, |r| r[c]);
            }
        }
        {
            let y = outputs[0].f32s_mut()?;
            for (row, out) in sum.chunks(h.max(1)).zip(y.chunks_mut(h.max(1))) {
                normalize_row(Norm::Layer, row, out, self.epsilon, gamma, Some(beta));
            }
        }
        if let Some(mi) = outputs.get_mut(1) {
            let mi = mi.i32s_mut()?;
            for (r, m) in mi.iter_mut().enumerate() {
                *m = mask.as_ref().map_or(0, |mask| mask[r * s..(r + 1) * s].iter().filter(|&&v| v != 0).count() as i32);
            }
        }
        if let Some(out) = outputs.get_mut(2) {
            out.f32s_mut()?.copy_from_slice(&sum);
        }
        Ok(())
    }
}
