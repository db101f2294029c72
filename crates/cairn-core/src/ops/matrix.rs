//! Matrix operators on the last two dims: Trilu and EyeLike (every dtype) and Det
//! (float dtypes).

use super::cast::onnx_dtype;
use crate::{bail_shape, required, DType, DataMut, Fact, Op, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("Det", |_| Ok(Box::new(Det)));
    r.register("Trilu", |ctx| Ok(Box::new(Trilu { upper: ctx.int("upper", 1)? != 0 })));
    r.register("EyeLike", |ctx| {
        let dtype = match ctx.int_opt("dtype")? {
            None => None,
            Some(code) => {
                Some(onnx_dtype(code).ok_or_else(|| ctx.unsupported("dtype", format!("ONNX data type {code} is not supported")))?)
            }
        };
        Ok(Box::new(EyeLike { dtype, k: ctx.int("k", 0)? }))
    });
}

/// Sets every element of each trailing [rows, cols] matrix for which `keep(row, col)` is
/// false to zero (the dtype's default).
fn zero_outside(data: &mut DataMut, rows: usize, cols: usize, keep: impl Fn(usize, usize) -> bool) {
    crate::dispatch_data!(DataMut, data, v => {
        for (i, x) in v.iter_mut().enumerate() {
            let (r, c) = ((i / cols.max(1)) % rows.max(1), i % cols.max(1));
            if !keep(r, c) {
                *x = Default::default();
            }
        }
    })
}

/// The upper (or lower) triangle of each matrix, from diagonal `k` (an input) on.
#[derive(Debug)]
struct Trilu {
    upper: bool,
}

impl Op for Trilu {
    fn op_type(&self) -> &str {
        "Trilu"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Trilu")?;
        if x.rank() < 2 {
            bail_shape!("Trilu", "input must have rank >= 2, got {:?}", x.shape);
        }
        if let Some(k) = inputs.get(1).copied().flatten() {
            if k.numel() != 1 || k.dtype != DType::I64 {
                bail_shape!("Trilu", "k must be one i64, got {} {:?}", k.dtype, k.shape);
            }
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Trilu")?;
        let k = match inputs.get(1).copied().flatten() {
            Some(k) => k.to_i64_vec()?[0],
            None => 0,
        };
        let (rows, cols) = (x.shape[x.rank() - 2], x.shape[x.rank() - 1]);
        let out = &mut outputs[0];
        out.data.copy_from(x.data)?;
        // Diagonal offset of (r, c) is c - r; i128 keeps a hostile k from overflowing.
        let k = k as i128;
        if self.upper {
            zero_outside(&mut out.data, rows, cols, |r, c| c as i128 - r as i128 >= k);
        } else {
            zero_outside(&mut out.data, rows, cols, |r, c| c as i128 - r as i128 <= k);
        }
        Ok(())
    }
}

/// A 2-D identity of the input's shape, ones on diagonal `k`.
#[derive(Debug)]
struct EyeLike {
    dtype: Option<DType>,
    k: i64,
}

impl Op for EyeLike {
    fn op_type(&self) -> &str {
        "EyeLike"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "EyeLike")?;
        if x.rank() != 2 {
            bail_shape!("EyeLike", "input must be 2-D, got {:?}", x.shape);
        }
        Ok(vec![Fact::new(self.dtype.unwrap_or(x.dtype), x.shape.clone())])
    }
    fn run(&self, _inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let out = &mut outputs[0];
        let (rows, cols) = (out.shape[0], out.shape[1]);
        let one = crate::Tensor::scalar_f32(1.0);
        let mut one_typed = crate::Tensor::zeros(out.dtype(), vec![])?;
        super::cast::convert(one.view().data, &mut one_typed.view_mut().data)?;
        for r in 0..rows {
            let c = r as i128 + self.k as i128;
            if (0..cols as i128).contains(&c) {
                let at = r * cols + c as usize;
                crate::with_same_dtype!(one_typed.view().data, &mut out.data, |s, d| d[at] = s[0])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn trilu_keeps_the_requested_triangle() {
        let x = Tensor::from_i64(vec![2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap();
        let k = Tensor::from_i64(vec![], vec![1]).unwrap();
        let mut y = Tensor::zeros(DType::I64, vec![2, 3]).unwrap();
        Trilu { upper: true }.run(&[Some(x.view()), Some(k.view())], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.i64s().unwrap(), &[0, 2, 3, 0, 0, 6]);
        Trilu { upper: false }.run(&[Some(x.view()), None], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.i64s().unwrap(), &[1, 0, 0, 4, 5, 0]);
    }

    #[test]
    fn eyelike_shifts_the_diagonal() {
        let mut y = Tensor::zeros(DType::F32, vec![2, 3]).unwrap();
        EyeLike { dtype: None, k: -1 }.run(&[], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0., 0., 0., 1., 0., 0.]);
    }
}

/// Determinant of each trailing `[M, M]` matrix, by LU decomposition with partial
/// pivoting in f64 (the accuracy numpy's reference has), rounded once to the dtype.
#[derive(Debug)]
struct Det;

impl Op for Det {
    fn op_type(&self) -> &str {
        "Det"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Det")?;
        let r = x.rank();
        if r < 2 || x.shape[r - 1] != x.shape[r - 2] || !x.dtype.is_float() {
            bail_shape!("Det", "needs a float [..., M, M] tensor, got {} {:?}", x.dtype, x.shape);
        }
        Ok(vec![Fact::new(x.dtype, x.shape[..r - 2].to_vec())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Det")?;
        let m = x.shape[x.rank() - 1];
        let values = x.to_f64_vec();
        let dets: Vec<f64> =
            if m == 0 { vec![1.0; outputs[0].data.len()] } else { values.chunks_exact(m * m).map(|a| det(a.to_vec(), m)).collect() };
        super::cast::convert(crate::DataRef::F64(&dets), &mut outputs[0].data)
    }
}

fn det(mut a: Vec<f64>, m: usize) -> f64 {
    let mut det = 1.0;
    for col in 0..m {
        let pivot = (col..m).max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs())).unwrap_or(col);
        if a[pivot * m + col] == 0.0 {
            return 0.0;
        }
        if pivot != col {
            for k in 0..m {
                a.swap(pivot * m + k, col * m + k);
            }
            det = -det;
        }
        let p = a[col * m + col];
        det *= p;
        for row in col + 1..m {
            let f = a[row * m + col] / p;
            for k in col..m {
                a[row * m + k] -= f * a[col * m + k];
            }
        }
    }
    det
}

#[cfg(test)]
mod det_tests {
    use super::det;

    #[test]
    fn determinants_with_pivoting() {
        assert_eq!(det(vec![1., 2., 3., 4.], 2), -2.0);
        // A zero first pivot needs a row swap (which flips the sign).
        assert_eq!(det(vec![0., 1., 1., 0.], 2), -1.0);
        assert!((det(vec![2., 0., 1., 1., 3., 2., 1., 1., 2.], 3) - 6.0).abs() < 1e-12);
    }
}
