//! Einsum: a reference contraction for any equation numpy accepts (implicit and
//! explicit output, `...` broadcasting, repeated labels for diagonals), on every
//! float and integer dtype. Floats accumulate in f64, integers in i64 (wrapping),
//! then narrow to the input dtype.
//!
//! This is the reference: every output element walks every combination of the
//! contracted labels. Models that spend real time in Einsum use matmul-shaped
//! equations; routing those to the GEMM is future work, not done here.

use super::cast::convert;
use crate::{bail_shape, required, DType, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use std::collections::BTreeMap;

pub fn register(r: &mut Registry) {
    r.register("Einsum", |ctx: &OpContext| {
        Ok(Box::new(Einsum { equation: ctx.string_opt("equation")?.ok_or_else(|| ctx.unsupported("equation", "is required"))? }))
    });
}

#[derive(Debug)]
struct Einsum {
    equation: String,
}

/// A label of one dim: a letter, or the k-th dim covered by `...` (counted from the right).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    Ellipsis(usize),
    Letter(char),
}

/// The equation resolved against the input ranks.
struct Plan {
    inputs: Vec<Vec<Label>>,
    output: Vec<Label>,
}

fn parse_term(term: &str, rank: Option<usize>) -> Result<Vec<Label>> {
    let bad = |why: String| Error::shape("Einsum", format!("term '{term}': {why}"));
    let (head, tail) = match term.split_once("...") {
        Some((h, t)) => (h, Some(t)),
        None => (term, None),
    };
    let letters = |s: &str| -> Result<Vec<Label>> {
        s.chars().map(|c| if c.is_ascii_alphabetic() { Ok(Label::Letter(c)) } else { Err(bad(format!("'{c}' is not a label"))) }).collect()
    };
    let mut labels = letters(head)?;
    if let Some(tail) = tail {
        let tail = letters(tail)?;
        // The ellipsis covers whatever the letters leave of the rank (0 for the output,
        // whose ellipsis width is decided by the inputs: `rank` None).
        let covered = match rank {
            Some(r) => r.checked_sub(labels.len() + tail.len()).ok_or_else(|| bad(format!("more labels than the rank {r}")))?,
            None => 0,
        };
        labels.extend((0..covered).rev().map(Label::Ellipsis));
        if rank.is_none() {
            labels.push(Label::Ellipsis(usize::MAX)); // placeholder, expanded by the caller
        }
        labels.extend(tail);
    }
    if let Some(r) = rank {
        if labels.len() != r {
            bail_shape!("Einsum", "term '{term}' has {} labels for an input of rank {r}", labels.len());
        }
    }
    Ok(labels)
}

impl Einsum {
    fn plan(&self, ranks: &[usize]) -> Result<Plan> {
        let eq: String = self.equation.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (eq.as_str(), None),
        };
        let terms: Vec<&str> = lhs.split(',').collect();
        if terms.len() != ranks.len() {
            bail_shape!("Einsum", "equation '{}' has {} inputs, the node {}", self.equation, terms.len(), ranks.len());
        }
        let inputs: Vec<Vec<Label>> = terms.iter().zip(ranks).map(|(t, &r)| parse_term(t, Some(r))).collect::<Result<_>>()?;
        let ellipsis_width =
            inputs.iter().flatten().filter_map(|l| if let Label::Ellipsis(k) = l { Some(k + 1) } else { None }).max().unwrap_or(0);
        let ellipsis: Vec<Label> = (0..ellipsis_width).rev().map(Label::Ellipsis).collect();
        let output = match rhs {
            Some(r) => {
                let parsed = parse_term(r, None)?;
                let mut out = Vec::new();
                for l in parsed {
                    match l {
                        Label::Ellipsis(usize::MAX) => out.extend(&ellipsis),
                        Label::Letter(c) if !inputs.iter().flatten().any(|&x| x == Label::Letter(c)) => {
                            bail_shape!("Einsum", "output label '{c}' appears in no input")
                        }
                        l if out.contains(&l) => bail_shape!("Einsum", "output label {l:?} repeats"),
                        l => out.push(l),
                    }
                }
                out
            }
            // Implicit output: the ellipsis dims, then the letters used once, sorted.
            None => {
                let mut counts: BTreeMap<char, usize> = BTreeMap::new();
                for l in inputs.iter().flatten() {
                    if let Label::Letter(c) = l {
                        *counts.entry(*c).or_default() += 1;
                    }
                }
                let mut out = ellipsis.clone();
                out.extend(counts.into_iter().filter(|&(_, n)| n == 1).map(|(c, _)| Label::Letter(c)));
                out
            }
        };
        Ok(Plan { inputs, output })
    }

    /// The size of every label; `...` dims broadcast (size 1 against n).
    fn sizes(plan: &Plan, shapes: &[&[usize]]) -> Result<BTreeMap<Label, usize>> {
        let mut sizes: BTreeMap<Label, usize> = BTreeMap::new();
        for (labels, shape) in plan.inputs.iter().zip(shapes) {
            for (&l, &d) in labels.iter().zip(shape.iter()) {
                let e = sizes.entry(l).or_insert(d);
                let broadcastable = matches!(l, Label::Ellipsis(_)) && (*e == 1 || d == 1);
                if *e != d && !broadcastable {
                    bail_shape!("Einsum", "label {l:?} has sizes {} and {d}", *e);
                }
                if *e == 1 {
                    *e = d;
                }
            }
        }
        Ok(sizes)
    }
}

impl Op for Einsum {
    fn op_type(&self) -> &str {
        "Einsum"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let facts: Vec<&Fact> =
            inputs.iter().map(|f| f.ok_or_else(|| Error::shape("Einsum", "inputs may not be omitted"))).collect::<Result<_>>()?;
        let first = required(inputs, 0, "Einsum")?;
        if facts.iter().any(|f| f.dtype != first.dtype) || !(first.dtype.is_float() || first.dtype.is_integer()) {
            bail_shape!("Einsum", "needs numeric inputs of one dtype");
        }
        let plan = self.plan(&facts.iter().map(|f| f.rank()).collect::<Vec<_>>())?;
        let sizes = Einsum::sizes(&plan, &facts.iter().map(|f| f.shape.as_slice()).collect::<Vec<_>>())?;
        let shape: Vec<usize> = plan.output.iter().map(|l| sizes[l]).collect();
        crate::checked_numel(&shape)?;
        // Counted in u64: on wasm32 a usize cannot even hold the 2^34 limit.
        let work = sizes.values().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        if work.is_none_or(|w| w > 1 << 34) {
            return Err(Error::TooLarge(format!("Einsum '{}' would take more than 2^34 steps", self.equation)));
        }
        Ok(vec![Fact::new(first.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let xs: Vec<TensorRef> =
            inputs.iter().map(|t| t.ok_or_else(|| Error::shape("Einsum", "inputs may not be omitted"))).collect::<Result<_>>()?;
        let plan = self.plan(&xs.iter().map(|x| x.rank()).collect::<Vec<_>>())?;
        let sizes = Einsum::sizes(&plan, &xs.iter().map(|x| x.shape).collect::<Vec<_>>())?;
        // Walk order: output labels, then contracted ones.
        let mut order = plan.output.clone();
        order.extend(sizes.keys().filter(|l| !plan.output.contains(l)));
        let dims: Vec<usize> = order.iter().map(|l| sizes[l]).collect();
        // Per input, its stride along each walk label (0 when absent or broadcast; summed
        // when a label repeats in one term, which walks the diagonal).
        let strides: Vec<Vec<usize>> = plan
            .inputs
            .iter()
            .zip(&xs)
            .map(|(labels, x)| {
                let own = super::broadcast::contiguous_strides(x.shape);
                order
                    .iter()
                    .map(|l| labels.iter().enumerate().filter(|&(i, m)| m == l && x.shape[i] != 1).map(|(i, _)| own[i]).sum())
                    .collect()
            })
            .collect();
        let out_len = outputs[0].len();
        let inner: usize = dims[plan.output.len()..].iter().product();
        let integer = xs[0].dtype().is_integer();
        let values: Vec<Vec<f64>> = if integer { Vec::new() } else { xs.iter().map(|x| x.to_f64_vec()).collect() };
        let ints: Vec<Vec<i64>> = if integer { xs.iter().map(integers_as_i64).collect::<Result<_>>()? } else { Vec::new() };
        let mut acc_f = vec![0.0f64; out_len];
        let mut acc_i = vec![0i64; out_len];
        let mut counter = vec![0usize; dims.len()];
        let mut offsets = vec![0usize; xs.len()];
        for step in 0..out_len * inner {
            let o = step / inner.max(1);
            if integer {
                acc_i[o] = acc_i[o].wrapping_add(ints.iter().zip(&offsets).fold(1i64, |p, (v, &off)| p.wrapping_mul(v[off])));
            } else {
                acc_f[o] += values.iter().zip(&offsets).map(|(v, &off)| v[off]).product::<f64>();
            }
            // Advance the odometer from the innermost walk label.
            for d in (0..dims.len()).rev() {
                counter[d] += 1;
                offsets.iter_mut().zip(&strides).for_each(|(off, s)| *off += s[d]);
                if counter[d] < dims[d] {
                    break;
                }
                offsets.iter_mut().zip(&strides).for_each(|(off, s)| *off -= s[d] * dims[d]);
                counter[d] = 0;
            }
        }
        if integer {
            convert(DataRef::I64(&acc_i), &mut outputs[0].data)
        } else {
            convert(DataRef::F64(&acc_f), &mut outputs[0].data)
        }
    }
}

/// Any integer tensor as i64s (u64 wraps), to accumulate in i64.
fn integers_as_i64(x: &TensorRef) -> Result<Vec<i64>> {
    let mut t = crate::Tensor::zeros(DType::I64, x.shape.to_vec())?;
    convert(x.data, &mut t.view_mut().data)?;
    Ok(t.i64s()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    fn einsum(eq: &str, xs: &[Tensor]) -> Result<Tensor> {
        let op = Einsum { equation: eq.into() };
        let facts: Vec<Fact> = xs.iter().map(|t| Fact::new(t.dtype(), t.shape().to_vec())).collect();
        let out = op.infer(&facts.iter().map(Some).collect::<Vec<_>>())?.remove(0);
        let mut y = Tensor::zeros(out.dtype, out.shape)?;
        op.run(&xs.iter().map(|t| Some(t.view())).collect::<Vec<_>>(), &mut [y.view_mut()])?;
        Ok(y)
    }

    #[test]
    fn matmul_trace_diagonal_and_implicit_output() {
        let a = Tensor::from_f32(vec![2, 2], vec![1., 2., 3., 4.]).unwrap();
        let b = Tensor::from_f32(vec![2, 2], vec![5., 6., 7., 8.]).unwrap();
        assert_eq!(einsum("ij,jk->ik", &[a.clone(), b.clone()]).unwrap().f32s().unwrap(), &[19., 22., 43., 50.]);
        assert_eq!(einsum("ii", std::slice::from_ref(&a)).unwrap().f32s().unwrap(), &[5.]);
        assert_eq!(einsum("...ii->...i", std::slice::from_ref(&a)).unwrap().f32s().unwrap(), &[1., 4.]);
        assert_eq!(einsum("ji", std::slice::from_ref(&a)).unwrap().f32s().unwrap(), &[1., 3., 2., 4.]);
        let ints = Tensor::from_i64(vec![3], vec![1, 2, 3]).unwrap();
        assert_eq!(einsum("i,i", &[ints.clone(), ints]).unwrap().i64s().unwrap(), &[14]);
        assert!(einsum("ij,jk->iz", &[a.clone(), b]).is_err());
        assert!(einsum("ijk->i", &[a]).is_err());
    }
}
