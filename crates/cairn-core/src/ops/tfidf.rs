//! TfIdfVectorizer (opset 9) on integer tokens: counts, per row, the occurrences of the
//! n-grams of `pool_int64s` (with up to `max_skip_count` tokens skipped between items) and
//! writes TF, IDF or TF-IDF weights at each n-gram's `ngram_indexes` column.
//!
//! Counting follows onnxruntime's (and onnx's reference) exactly, including its choice
//! that unigrams are counted at skip distance 1 only. String pools are not supported
//! (no string tensors: docs/adr/0013).

use crate::{bail_shape, required, DType, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use std::collections::{HashMap, HashSet};

pub fn register(r: &mut Registry) {
    r.register("TfIdfVectorizer", build);
}

const OP: &str = "TfIdfVectorizer";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Tf,
    Idf,
    TfIdf,
}

#[derive(Debug)]
struct TfIdf {
    mode: Mode,
    min_n: usize,
    max_n: usize,
    max_skip: usize,
    /// n-gram -> output column.
    grams: HashMap<Vec<i64>, usize>,
    /// Every prefix of every n-gram: a walk stops at the first one missing.
    prefixes: HashSet<Vec<i64>>,
    weights: Option<Vec<f32>>,
    width: usize,
}

fn build(ctx: &OpContext) -> Result<Box<dyn Op>> {
    if ctx.has("pool_strings") {
        return Err(ctx.unsupported("pool_strings", "string tokens are not supported (Cairn has no string tensors); use pool_int64s"));
    }
    let mode = match ctx.string("mode", "")?.as_str() {
        "TF" => Mode::Tf,
        "IDF" => Mode::Idf,
        "TFIDF" => Mode::TfIdf,
        other => return Err(ctx.unsupported("mode", format!("'{other}' is not TF, IDF or TFIDF"))),
    };
    let invalid = |attr: &str, detail: String| Error::InvalidAttr { attr: attr.into(), detail };
    let count = |name: &str| -> Result<usize> {
        let v = ctx.int_req(name)?;
        usize::try_from(v).map_err(|_| invalid(name, format!("{v} must not be negative")))
    };
    let (min_n, max_n, max_skip) = (count("min_gram_length")?, count("max_gram_length")?, count("max_skip_count")?);
    if min_n < 1 || min_n > max_n {
        return Err(invalid("min_gram_length", format!("need 1 <= min_gram_length {min_n} <= max_gram_length {max_n}")));
    }
    let pool = ctx.ints_opt("pool_int64s")?.unwrap_or_default();
    let counts = ctx.ints_opt("ngram_counts")?.ok_or_else(|| invalid("ngram_counts", "required".into()))?;
    let indexes = ctx.ints_opt("ngram_indexes")?.ok_or_else(|| invalid("ngram_indexes", "required".into()))?;
    let weights = ctx.floats_opt("weights")?.filter(|w| !w.is_empty());
    let width = indexes.iter().max().map_or(0, |&m| m.max(-1) + 1) as usize;
    if indexes.iter().any(|&i| i < 0) {
        return Err(invalid("ngram_indexes", "indexes must not be negative".into()));
    }
    if weights.as_ref().is_some_and(|w| w.len() < width) {
        return Err(invalid("weights", format!("needs one weight per output column ({width})")));
    }
    // The pool holds the 1-grams, then the 2-grams, ...; ngram_counts[i] is where the
    // (i+1)-grams start. Ids run over every n-gram, kept or not.
    let (mut grams, mut prefixes, mut id) = (HashMap::new(), HashSet::new(), 0usize);
    for (i, &start) in counts.iter().enumerate() {
        let n = i + 1;
        let end = counts.get(i + 1).copied().unwrap_or(pool.len() as i64);
        let (start, end) = (usize::try_from(start).unwrap_or(usize::MAX), usize::try_from(end).unwrap_or(usize::MAX));
        if start > end || end > pool.len() {
            return Err(invalid("ngram_counts", format!("{counts:?} do not split the pool of {}", pool.len())));
        }
        for gram in pool[start..end].chunks_exact(n) {
            if (min_n..=max_n).contains(&n) {
                let column = *indexes.get(id).ok_or_else(|| invalid("ngram_indexes", format!("has no entry for n-gram {id}")))? as usize;
                grams.insert(gram.to_vec(), column);
                (1..=n).for_each(|k| {
                    prefixes.insert(gram[..k].to_vec());
                });
            }
            id += 1;
        }
    }
    Ok(Box::new(TfIdf { mode, min_n, max_n, max_skip, grams, prefixes, weights, width }))
}

impl TfIdf {
    fn count_row(&self, row: &[i64], out: &mut [f32]) {
        let mut start_n = self.min_n;
        let mut gram = Vec::with_capacity(self.max_n);
        for skip in 1..=self.max_skip + 1 {
            for start in 0..row.len() {
                if start + skip * (start_n - 1) >= row.len() {
                    break;
                }
                gram.clear();
                let mut at = start;
                while gram.len() < self.max_n && at < row.len() {
                    gram.push(row[at]);
                    if !self.prefixes.contains(&gram) {
                        break;
                    }
                    if gram.len() >= start_n {
                        if let Some(&col) = self.grams.get(&gram) {
                            out[col] += 1.0;
                        }
                    }
                    at += skip;
                }
            }
            if start_n == 1 {
                start_n = 2;
                if start_n > self.max_n {
                    break;
                }
            }
        }
    }
}

impl Op for TfIdf {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, OP)?;
        if !matches!(x.dtype, DType::I32 | DType::I64) {
            bail_shape!(OP, "is implemented for int32 and int64 tokens, got {}", x.dtype);
        }
        let shape = match x.shape[..] {
            [_] => vec![self.width],
            [n, _] => vec![n, self.width],
            _ => bail_shape!(OP, "X must be [C] or [N, C], got {:?}", x.shape),
        };
        Ok(vec![Fact::new(DType::F32, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, OP)?;
        let tokens = x.to_i64_vec()?;
        let row_len = x.shape.last().copied().unwrap_or(0);
        let y = outputs[0].f32s_mut()?;
        y.iter_mut().for_each(|v| *v = 0.0);
        if self.width == 0 {
            return Ok(());
        }
        for (row, out) in tokens.chunks(row_len.max(1)).zip(y.chunks_exact_mut(self.width)) {
            self.count_row(row, out);
            for (i, v) in out.iter_mut().enumerate() {
                let w = self.weights.as_ref().map(|w| w[i]);
                *v = match (self.mode, w) {
                    (Mode::Tf, _) => *v,
                    (Mode::Idf, Some(w)) => (*v > 0.0) as u8 as f32 * w,
                    (Mode::Idf, None) => (*v > 0.0) as u8 as f32,
                    (Mode::TfIdf, Some(w)) => *v * w,
                    (Mode::TfIdf, None) => *v,
                };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attr, Attrs, Tensor};
    use std::sync::Arc;

    #[test]
    fn counts_unigrams_and_skip_bigrams() {
        // Pool: unigram 7 (column 0), bigram (7, 8) (column 1); one skip allowed.
        let mut attrs = Attrs::new();
        attrs.insert("mode".into(), Attr::Str("TF".into()));
        attrs.insert("min_gram_length".into(), Attr::Int(1));
        attrs.insert("max_gram_length".into(), Attr::Int(2));
        attrs.insert("max_skip_count".into(), Attr::Int(1));
        attrs.insert("pool_int64s".into(), Attr::Ints(vec![7, 7, 8]));
        attrs.insert("ngram_counts".into(), Attr::Ints(vec![0, 1]));
        attrs.insert("ngram_indexes".into(), Attr::Ints(vec![0, 1]));
        let ctx = OpContext::new(OP, 9, &attrs, 1, 1);
        let op = build(&ctx).unwrap();
        // 7 8 7 0 8: unigram 7 twice; (7, 8) adjacent once and with one skip once (7 _ 8).
        let x = Tensor::from_i64(vec![5], vec![7, 8, 7, 0, 8]).unwrap();
        let out = crate::plan::run_owned(op.as_ref(), &[Some(Arc::new(x))]).unwrap();
        assert_eq!(out[0].f32s().unwrap(), &[2., 2.]);
    }
}
