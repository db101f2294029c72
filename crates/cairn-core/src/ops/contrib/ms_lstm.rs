//! DynamicQuantizeLSTM: an ONNX LSTM whose W and R are int8 (stored transposed, [D, in, 4H]),
//! as onnxruntime's dynamic quantizer writes it. A reference kernel that computes what
//! onnxruntime's CPU provider computes: each GEMM quantizes its float operand to uint8 with a
//! scale and zero point taken from that operand's range (X once for all steps, H at every
//! step), multiplies in integers, and rescales. Gate math follows the ONNX LSTM spec (gates
//! i, o, f, c; peepholes i, o, f; sigmoid/tanh/tanh).
//!
//! When the LSTM family lands as a default-domain op with a GEMM-based kernel, this op's
//! gate loop should move onto it; the integer GEMM emulation stays here.

use super::MS_DOMAIN;
use crate::{bail_shape, required, DType, DataRef, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::gemv::gemv_i32_accumulate;

pub fn register(r: &mut Registry) {
    r.register_in(MS_DOMAIN, "DynamicQuantizeLSTM", build);
}

fn build(ctx: &OpContext) -> Result<Box<dyn Op>> {
    let hidden = ctx.int_req("hidden_size")?;
    if hidden < 1 {
        return Err(crate::Error::InvalidAttr { attr: "hidden_size".into(), detail: format!("{hidden} must be at least 1") });
    }
    let directions = match ctx.string("direction", "forward")?.as_str() {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        other => return Err(ctx.unsupported("direction", format!("'{other}' is not forward, reverse or bidirectional"))),
    };
    if let Some(acts) = ctx.strings_opt("activations")? {
        let default = ["Sigmoid", "Tanh", "Tanh"];
        if acts.iter().enumerate().any(|(i, a)| !a.eq_ignore_ascii_case(default[i % 3])) {
            return Err(ctx.unsupported("activations", format!("{acts:?}: only Sigmoid, Tanh, Tanh is implemented")));
        }
    }
    ctx.ignore("activation_alpha");
    ctx.ignore("activation_beta");
    if ctx.float_opt("clip")?.is_some() {
        return Err(ctx.unsupported("clip", "cell clipping is not implemented"));
    }
    if ctx.int("input_forget", 0)? != 0 {
        return Err(ctx.unsupported("input_forget", "coupled input and forget gates are not implemented"));
    }
    Ok(Box::new(DynamicQuantizeLstm { hidden: hidden as usize, directions }))
}

#[derive(Debug)]
struct DynamicQuantizeLstm {
    hidden: usize,
    /// `true` for a reverse pass; two entries for bidirectional.
    directions: Vec<bool>,
}

const OP: &str = "DynamicQuantizeLSTM";

/// Per-direction int8/uint8 weights [in, 4H] with per-direction or per-column scale and zero point.
struct QuantWeights {
    values: Vec<i32>,
    rows: usize,
    cols: usize,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
}

impl QuantWeights {
    fn read(w: TensorRef, scale: TensorRef, zp: TensorRef, dirs: usize, rows: usize, cols: usize, what: &str) -> Result<QuantWeights> {
        if w.shape != [dirs, rows, cols] {
            bail_shape!(OP, "{what} is {:?}, expected [{dirs}, {rows}, {cols}]", w.shape);
        }
        let values = bytes_as_i32(w, what)?;
        let scales = scale.f32s()?.to_vec();
        let zero_points = bytes_as_i32(zp, what)?;
        let per = |n: usize| n == dirs || n == dirs * cols;
        if !per(scales.len()) || scales.len() != zero_points.len() {
            bail_shape!(
                OP,
                "{what}'s scale ({}) and zero point ({}) must have {dirs} or {} values",
                scales.len(),
                zero_points.len(),
                dirs * cols
            );
        }
        Ok(QuantWeights { values, rows, cols, scales, zero_points })
    }

    /// (scale, zero point) of column `j` of direction `d`.
    fn column(&self, d: usize, j: usize) -> (f32, i32) {
        let dirs = self.values.len() / (self.rows * self.cols).max(1);
        let i = if self.scales.len() == dirs { d } else { d * self.cols + j };
        (self.scales[i], self.zero_points[i])
    }

    /// out[r, j] += a[r, :] . W_d[:, j], with `a` quantized to uint8 over its own range.
    fn gemm_accumulate(&self, d: usize, a: &[f32], out: &mut [f32]) {
        let (qa, sa, za) = quantize_u8(a);
        let w = &self.values[d * self.rows * self.cols..(d + 1) * self.rows * self.cols];
        let m = a.len() / self.rows.max(1);
        let mut acc = vec![0i32; self.cols];
        let mut centered = vec![0i32; self.rows];
        for r in 0..m {
            acc.iter_mut().for_each(|x| *x = 0);
            centered.iter_mut().zip(&qa[r * self.rows..(r + 1) * self.rows]).for_each(|(c, &q)| *c = q - za);
            gemv_i32_accumulate(&centered, w, &mut acc);
            // sum (qa - za)(w - zw) = sum (qa - za) w - zw sum (qa - za)
            let row_sum: i32 = centered.iter().sum();
            for (j, o) in out[r * self.cols..(r + 1) * self.cols].iter_mut().enumerate() {
                let (sw, zw) = self.column(d, j);
                *o += (acc[j] - zw * row_sum) as f32 * sa * sw;
            }
        }
    }
}

/// The values of an int8 or uint8 tensor (weights and their zero points).
fn bytes_as_i32(t: TensorRef, what: &str) -> Result<Vec<i32>> {
    Ok(match t.data {
        DataRef::I8(v) => v.iter().map(|&x| i32::from(x)).collect(),
        DataRef::U8(v) => v.iter().map(|&x| i32::from(x)).collect(),
        _ => bail_shape!(OP, "{what} and its zero point must be int8 or uint8, got {}", t.dtype()),
    })
}

/// onnxruntime's dynamic uint8 quantization of a GEMM operand: the range always includes 0,
/// scale = range / 255, zero point = round(-min / scale); values round half to even.
fn quantize_u8(a: &[f32]) -> (Vec<i32>, f32, i32) {
    let (min, max) = a.iter().fold((0.0f32, 0.0f32), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
    let zp = (-min / scale).round_ties_even().clamp(0.0, 255.0) as i32;
    let q = a.iter().map(|&x| ((x / scale).round_ties_even() as i32 + zp).clamp(0, 255)).collect();
    (q, scale, zp)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Op for DynamicQuantizeLstm {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, OP)?;
        if x.rank() != 3 || x.dtype != DType::F32 {
            bail_shape!(OP, "X must be float32 [seq, batch, input], got {} {:?}", x.dtype, x.shape);
        }
        let (s, b, d, h) = (x.shape[0], x.shape[1], self.directions.len(), self.hidden);
        Ok(vec![Fact::new(DType::F32, vec![s, d, b, h]), Fact::new(DType::F32, vec![d, b, h]), Fact::new(DType::F32, vec![d, b, h])])
    }
    fn macs(&self, inputs: &[Option<&Fact>], _outputs: &[Fact]) -> u64 {
        let Some(Some(x)) = inputs.first() else { return 0 };
        let (h, d) = (self.hidden as u64, self.directions.len() as u64);
        x.shape[0] as u64 * x.shape[1] as u64 * d * 4 * h * (x.shape[2] as u64 + h)
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, OP)?;
        let (steps, batch, input) = (x.shape[0], x.shape[1], x.shape[2]);
        let (dirs, h) = (self.directions.len(), self.hidden);
        let opt = |i: usize| inputs.get(i).copied().flatten();
        let w = QuantWeights::read(required(inputs, 1, OP)?, required(inputs, 8, OP)?, required(inputs, 9, OP)?, dirs, input, 4 * h, "W")?;
        let r = QuantWeights::read(required(inputs, 2, OP)?, required(inputs, 10, OP)?, required(inputs, 11, OP)?, dirs, h, 4 * h, "R")?;
        let check = |t: Option<TensorRef>, n: usize, what: &str| -> Result<Option<Vec<f32>>> {
            let Some(t) = t else { return Ok(None) };
            let v = t.f32s()?;
            if v.len() != n {
                bail_shape!(OP, "{what} has {} values, expected {n}", v.len());
            }
            Ok(Some(v.to_vec()))
        };
        let bias = check(opt(3), dirs * 8 * h, "B")?;
        let lens: Vec<usize> = match opt(4) {
            Some(t) => {
                let v = t.to_i64_vec()?;
                if v.len() != batch || v.iter().any(|&l| l < 0 || l as usize > steps) {
                    bail_shape!(OP, "sequence_lens {v:?} must hold {batch} lengths within 0..={steps}");
                }
                v.into_iter().map(|l| l as usize).collect()
            }
            None => vec![steps; batch],
        };
        let h0 = check(opt(5), dirs * batch * h, "initial_h")?;
        let c0 = check(opt(6), dirs * batch * h, "initial_c")?;
        let peep = check(opt(7), dirs * 3 * h, "P")?;
        let xs = x.f32s()?;

        let mut y = vec![0.0f32; steps * dirs * batch * h];
        let mut y_h = vec![0.0f32; dirs * batch * h];
        let mut y_c = vec![0.0f32; dirs * batch * h];
        for (d, &reverse) in self.directions.iter().enumerate() {
            // X W for every step at once, as onnxruntime does (one quantization of X).
            let mut xw = vec![0.0f32; steps * batch * 4 * h];
            w.gemm_accumulate(d, xs, &mut xw);
            let mut hs = h0.as_ref().map_or(vec![0.0; batch * h], |v| v[d * batch * h..(d + 1) * batch * h].to_vec());
            let mut cs = c0.as_ref().map_or(vec![0.0; batch * h], |v| v[d * batch * h..(d + 1) * batch * h].to_vec());
            let wb = bias.as_ref().map(|b| &b[d * 8 * h..d * 8 * h + 4 * h]);
            let rb = bias.as_ref().map(|b| &b[d * 8 * h + 4 * h..(d + 1) * 8 * h]);
            let p = peep.as_ref().map(|p| &p[d * 3 * h..(d + 1) * 3 * h]);
            for step in 0..steps {
                let mut gates = vec![0.0f32; batch * 4 * h];
                r.gemm_accumulate(d, &hs, &mut gates);
                for bi in 0..batch {
                    if step >= lens[bi] {
                        continue; // past this sequence's end: state frozen, output zero
                    }
                    let t = if reverse { lens[bi] - 1 - step } else { step };
                    let g = &gates[bi * 4 * h..(bi + 1) * 4 * h];
                    let xg = &xw[(t * batch + bi) * 4 * h..(t * batch + bi + 1) * 4 * h];
                    let pre = |gate: usize, j: usize| {
                        let k = gate * h + j;
                        g[k] + xg[k] + wb.map_or(0.0, |b| b[k]) + rb.map_or(0.0, |b| b[k])
                    };
                    for j in 0..h {
                        let c_prev = cs[bi * h + j];
                        let peephole = |i: usize, c: f32| p.map_or(0.0, |p| p[i * h + j] * c);
                        let i_gate = sigmoid(pre(0, j) + peephole(0, c_prev));
                        let f_gate = sigmoid(pre(2, j) + peephole(2, c_prev));
                        let cell = pre(3, j).tanh();
                        let c = f_gate * c_prev + i_gate * cell;
                        let o_gate = sigmoid(pre(1, j) + peephole(1, c));
                        let hv = o_gate * c.tanh();
                        cs[bi * h + j] = c;
                        hs[bi * h + j] = hv;
                        y[((t * dirs + d) * batch + bi) * h + j] = hv;
                    }
                }
            }
            y_h[d * batch * h..(d + 1) * batch * h].copy_from_slice(&hs);
            y_c[d * batch * h..(d + 1) * batch * h].copy_from_slice(&cs);
        }
        for (out, v) in outputs.iter_mut().zip([y, y_h, y_c]) {
            out.f32s_mut()?.copy_from_slice(&v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Attr, Attrs, Registry, Tensor, TensorData};
    use std::sync::Arc;

    fn run(attrs: &[(&str, Attr)], inputs: Vec<Option<Tensor>>) -> crate::Result<Vec<Tensor>> {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let op = Registry::global().build("n", super::MS_DOMAIN, super::OP, 1, &attrs, inputs.len(), 3)?;
        let inputs: Vec<Option<Arc<Tensor>>> = inputs.into_iter().map(|t| t.map(Arc::new)).collect();
        crate::plan::run_owned(op.as_ref(), &inputs)
    }

    fn f32s(shape: &[usize], v: &[f32]) -> Option<Tensor> {
        Some(Tensor::from_f32(shape.to_vec(), v.to_vec()).unwrap())
    }
    fn i8s(shape: &[usize], v: &[i8]) -> Option<Tensor> {
        Some(Tensor::new(shape.to_vec(), TensorData::I8(v.to_vec())).unwrap())
    }

    /// A bidirectional layer with per-direction scales and a shorter second sequence.
    /// Expected values: onnxruntime 1.32's CPU DynamicQuantizeLSTM on the same inputs
    /// (a one-node graph, 1 thread), printed to 7 significant digits.
    fn bidirectional_case() -> Vec<Option<Tensor>> {
        #[rustfmt::skip]
        let x = [0.0, 0.3, -0.27, -0.89, -0.45, -0.99, 0.06, 1.34, -0.49, -0.62, 0.49, 0.36, 0.11, -0.93, -0.03, 0.7, -1.34, -0.46];
        #[rustfmt::skip]
        let w: [i8; 48] = [40, 24, -32, 97, -7, -57, 69, -68, 71, 22, -78, -92, -12, -93, -72, 2, 94, -7, 61, 83, 64, 25, -12, 2,
            -47, -1, -25, -51, 98, -98, -81, -62, 93, 38, 76, -60, 44, -27, -3, -100, 23, 66, 32, -70, 6, -47, 92, 76];
        #[rustfmt::skip]
        let r: [i8; 32] = [-63, 1, 87, 69, 41, 27, -92, 48, -6, -82, -52, 8, 45, 1, 22, 74,
            37, -28, 28, 19, -79, -89, 32, -23, 19, -36, -55, -70, -24, 63, -20, -25];
        #[rustfmt::skip]
        let b = [0.07, 0.14, -0.07, 0.02, -0.05, 0.01, -0.12, -0.06, -0.02, 0.09, 0.11, -0.13, -0.08, 0.06, -0.2, -0.05,
            -0.01, 0.13, 0.07, -0.03, -0.04, -0.03, 0.15, -0.04, -0.03, 0.04, -0.01, -0.02, -0.11, 0.0, -0.04, 0.12];
        let lens = Some(Tensor::new(vec![2], TensorData::I32(vec![3, 2])).unwrap());
        vec![
            f32s(&[3, 2, 3], &x),
            i8s(&[2, 3, 8], &w),
            i8s(&[2, 2, 8], &r),
            f32s(&[2, 16], &b),
            lens,
            None,
            None,
            None,
            f32s(&[2], &[0.01, 0.02]),
            i8s(&[2], &[0, 0]),
            f32s(&[2], &[0.015, 0.01]),
            i8s(&[2], &[0, 0]),
        ]
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 2e-6, "element {i}: {g} vs onnxruntime's {w}\n{got:?}");
        }
    }

    #[test]
    fn bidirectional_matches_onnxruntime() {
        let attrs = [("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into()))];
        let out = run(&attrs, bidirectional_case()).unwrap();
        #[rustfmt::skip]
        let y = [-0.09450459, -0.02204977, -0.04112623, 0.04291368, -0.3467431, -0.2776619, 0.001765406, 0.2993974,
            -0.1029684, -0.02243969, -0.2439608, 0.08028548, -0.5050784, -0.1004077, 0.5209671, 0.1032415,
            -0.05573734, -0.1710258, 0.0, 0.0, -0.00162679, 0.238339, 0.0, 0.0];
        let y_h = [-0.05573734, -0.1710258, -0.2439608, 0.08028548, -0.3467431, -0.2776619, 0.001765406, 0.2993974];
        let y_c = [-0.08679049, -0.2611136, -0.5384948, 0.2866553, -0.7143727, -0.6505333, 0.005403735, 0.3287029];
        assert_eq!(out[0].shape(), &[3, 2, 2, 2]);
        assert_close(out[0].f32s().unwrap(), &y);
        assert_close(out[1].f32s().unwrap(), &y_h);
        assert_close(out[2].f32s().unwrap(), &y_c);
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let hidden = || ("hidden_size", Attr::Int(2));
        let bi = || ("direction", Attr::Str("bidirectional".into()));
        // Weights for one direction where the layer is bidirectional.
        let mut case = bidirectional_case();
        case[1] = i8s(&[1, 3, 8], &[0; 24]);
        assert!(run(&[hidden(), bi()], case).is_err());
        // A sequence length beyond the sequence.
        let mut case = bidirectional_case();
        case[4] = Some(Tensor::new(vec![2], TensorData::I32(vec![3, 9])).unwrap());
        let err = run(&[hidden(), bi()], case).unwrap_err();
        assert!(err.to_string().contains("sequence_lens"), "{err}");
        // A scale per column of the wrong count.
        let mut case = bidirectional_case();
        case[8] = f32s(&[3], &[0.01; 3]);
        assert!(run(&[hidden(), bi()], case).is_err());
        // Float weights.
        let mut case = bidirectional_case();
        case[2] = f32s(&[2, 2, 8], &[0.0; 32]);
        assert!(run(&[hidden(), bi()], case).is_err());
        // Modes that are not implemented are refused when the op is built.
        assert!(run(&[hidden(), ("direction", Attr::Str("sideways".into()))], bidirectional_case()).is_err());
        assert!(run(&[hidden(), bi(), ("clip", Attr::Float(1.0))], bidirectional_case()).is_err());
        assert!(run(&[("hidden_size", Attr::Int(0))], bidirectional_case()).is_err());
    }
}
