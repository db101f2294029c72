//! Numpy-style (multidirectional) broadcasting, as ONNX defines it:
//! <https://github.com/onnx/onnx/blob/main/docs/Broadcasting.md>.

use crate::{Error, Result};

/// The broadcast shape of several shapes, or an error naming the op.
pub fn broadcast_shapes(shapes: &[&[usize]], op_type: &str) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let pad = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[pad + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(Error::shape(op_type, format!("shapes {:?} cannot be broadcast together", shapes)));
            }
        }
    }
    Ok(out)
}

/// Element strides of `shape` laid out against `out_shape`: 0 on broadcast dims,
/// so `sum(index[i] * strides[i])` finds the source element of an output index.
pub fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let pad = out_shape.len() - shape.len();
    let mut strides = vec![0usize; out_shape.len()];
    let mut acc = 1usize;
    for i in (0..shape.len()).rev() {
        strides[pad + i] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    strides
}

/// Row-major contiguous strides of a shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Calls `f(out_index, offsets)` for every output element in row-major order, where
/// `offsets[i]` is the element offset in input `i` (laid out with `strides[i]` from
/// [`broadcast_strides`]). An odometer walk: no division per element.
pub fn for_each_offset<const N: usize>(out_shape: &[usize], strides: [&[usize]; N], mut f: impl FnMut(usize, [usize; N])) {
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return;
    }
    let rank = out_shape.len();
    let mut counter = vec![0usize; rank];
    let mut offsets = [0usize; N];
    for idx in 0..total {
        f(idx, offsets);
        // Advance the odometer from the innermost dim.
        for d in (0..rank).rev() {
            counter[d] += 1;
            for (o, s) in offsets.iter_mut().zip(&strides) {
                *o += s[d];
            }
            if counter[d] < out_shape[d] {
                break;
            }
            for (o, s) in offsets.iter_mut().zip(&strides) {
                *o -= s[d] * out_shape[d];
            }
            counter[d] = 0;
        }
    }
}

/// Like [`for_each_offset`], one call per innermost *run* instead of per element:
/// `f(out_start, len, starts, steps)` covers output elements `out_start .. out_start + len`,
/// whose elements in input `i` start at `starts[i]`, `steps[i]` apart (0 = broadcast).
/// Trailing dims merge into one run while every input stays evenly strided across them,
/// so `[128, 384] + [384]` is 128 runs of 384 and `[N, C, H, W] + [C, 1, 1]` is N*C runs
/// of H*W with a step-0 (scalar) operand: loops the compiler vectorizes.
pub fn for_each_run<const N: usize>(out_shape: &[usize], strides: [&[usize]; N], mut f: impl FnMut(usize, usize, [usize; N], [usize; N])) {
    if out_shape.iter().product::<usize>() == 0 {
        return;
    }
    let Some(mut d) = out_shape.len().checked_sub(1) else {
        return f(0, 1, [0; N], [0; N]);
    };
    let steps: [usize; N] = std::array::from_fn(|i| strides[i][d]);
    let mut len = out_shape[d];
    while d > 0 && (0..N).all(|i| strides[i][d - 1] == steps[i] * len) {
        d -= 1;
        len *= out_shape[d];
    }
    let outer: Vec<&[usize]> = strides.iter().map(|s| &s[..d]).collect();
    let outer: [&[usize]; N] = std::array::from_fn(|i| outer[i]);
    for_each_offset(&out_shape[..d], outer, |run, starts| f(run * len, len, starts, steps));
}

/// `out[i] = f(a[..], b[..])` with broadcasting; fast paths for equal shapes and scalars.
pub fn map2<A: Copy, B: Copy, O>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out: &mut [O],
    out_shape: &[usize],
    f: impl Fn(A, B) -> O,
) {
    if a_shape == out_shape && b_shape == out_shape {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    } else if b.len() == 1 && a_shape == out_shape {
        let y = b[0];
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x, y);
        }
    } else if a.len() == 1 && b_shape == out_shape {
        let x = a[0];
        for (o, &y) in out.iter_mut().zip(b) {
            *o = f(x, y);
        }
    } else {
        let sa = broadcast_strides(a_shape, out_shape);
        let sb = broadcast_strides(b_shape, out_shape);
        for_each_run(out_shape, [&sa, &sb], |o, len, [ia, ib], steps| {
            let out = &mut out[o..o + len];
            match steps {
                [1, 1] => out.iter_mut().zip(&a[ia..ia + len]).zip(&b[ib..ib + len]).for_each(|((o, &x), &y)| *o = f(x, y)),
                [1, 0] => out.iter_mut().zip(&a[ia..ia + len]).for_each(|(o, &x)| *o = f(x, b[ib])),
                [0, 1] => out.iter_mut().zip(&b[ib..ib + len]).for_each(|(o, &y)| *o = f(a[ia], y)),
                [sa, sb] => out.iter_mut().enumerate().for_each(|(k, o)| *o = f(a[ia + k * sa], b[ib + k * sb])),
            }
        });
    }
}

/// `out[i] = f(out[i], b[..])`: [`map2`] where the first operand already fills the
/// output (an in-place step), `b` broadcast to it.
pub fn map2_in_place<T: Copy, B: Copy>(out: &mut [T], out_shape: &[usize], b: &[B], b_shape: &[usize], f: impl Fn(T, B) -> T) {
    if b_shape == out_shape {
        out.iter_mut().zip(b).for_each(|(o, &y)| *o = f(*o, y));
    } else if b.len() == 1 {
        let y = b[0];
        out.iter_mut().for_each(|o| *o = f(*o, y));
    } else {
        let sb = broadcast_strides(b_shape, out_shape);
        let out_strides = contiguous_strides(out_shape);
        for_each_run(out_shape, [&out_strides, &sb], |o, len, [_, ib], [_, step]| {
            let out = &mut out[o..o + len];
            match step {
                1 => out.iter_mut().zip(&b[ib..ib + len]).for_each(|(o, &y)| *o = f(*o, y)),
                0 => out.iter_mut().for_each(|o| *o = f(*o, b[ib])),
                s => out.iter_mut().enumerate().for_each(|(k, o)| *o = f(*o, b[ib + k * s])),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_like_numpy() {
        assert_eq!(broadcast_shapes(&[&[2, 3, 4], &[4]], "Add").unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast_shapes(&[&[2, 1, 4], &[3, 1]], "Add").unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast_shapes(&[&[], &[5]], "Add").unwrap(), vec![5]);
        assert!(broadcast_shapes(&[&[2, 3], &[4]], "Add").is_err());
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), vec![0, 1, 0]);
    }

    /// Every broadcast pattern gives what the per-element odometer gives.
    #[test]
    fn runs_agree_with_the_element_walk() {
        let cases: [(&[usize], &[usize]); 8] = [
            (&[2, 3, 4], &[4]),
            (&[2, 3, 4], &[3, 1]),
            (&[1, 12, 5, 5], &[1, 1, 1, 5]),
            (&[2, 3, 2, 2], &[3, 1, 1]),
            (&[4, 1], &[1, 5]),
            (&[], &[]),
            (&[3], &[1]),
            (&[2, 1, 3], &[2, 4, 1]),
        ];
        for (ash, bsh) in cases {
            let osh = broadcast_shapes(&[ash, bsh], "Add").unwrap();
            let a: Vec<f32> = (0..ash.iter().product::<usize>()).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..bsh.iter().product::<usize>()).map(|i| 1000.0 * (i + 1) as f32).collect();
            let n = osh.iter().product::<usize>();
            let (sa, sb) = (broadcast_strides(ash, &osh), broadcast_strides(bsh, &osh));
            let mut want = vec![0.0f32; n];
            for_each_offset(&osh, [&sa, &sb], |i, [ia, ib]| want[i] = a[ia] + b[ib]);
            let mut got = vec![0.0f32; n];
            map2(&a, ash, &b, bsh, &mut got, &osh, |x, y| x + y);
            assert_eq!(got, want, "{ash:?} + {bsh:?}");
            if ash == osh.as_slice() {
                let mut inplace = a.clone();
                map2_in_place(&mut inplace, &osh, &b, bsh, |x, y| x + y);
                assert_eq!(inplace, want, "in place {ash:?} + {bsh:?}");
            }
        }
    }
}
