//! Bit operators on every integer dtype, with broadcasting: BitShift, BitwiseAnd,
//! BitwiseOr, BitwiseXor, BitwiseNot; and BitCast, which reinterprets the bits of any
//! dtype as another of the same width.
//!
//! BitShift follows onnx's reference (`onnx/reference/ops/op_bitshift.py`), which also
//! defines the signed types newer opsets allow: a shift amount outside `0..bits` gives 0
//! (or -1 when shifting a negative value right), a left shift of a signed value shifts
//! its bit pattern, a right shift of one is arithmetic.

use super::broadcast::{broadcast_shapes, map2};
use crate::{bail_shape, required, DataMut, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("BitShift", |ctx: &OpContext| {
        let kind = match ctx.string("direction", "")?.as_str() {
            "LEFT" => BitKind::Left,
            "RIGHT" => BitKind::Right,
            other => return Err(Error::InvalidAttr { attr: "direction".into(), detail: format!("must be LEFT or RIGHT, got '{other}'") }),
        };
        Ok(Box::new(BitBinary { kind }))
    });
    r.register("BitwiseAnd", |_| Ok(Box::new(BitBinary { kind: BitKind::And })));
    r.register("BitwiseOr", |_| Ok(Box::new(BitBinary { kind: BitKind::Or })));
    r.register("BitwiseXor", |_| Ok(Box::new(BitBinary { kind: BitKind::Xor })));
    r.register("BitwiseNot", |_| Ok(Box::new(BitwiseNot)));
    r.register("BitCast", |ctx| {
        let code = ctx.int_req("to")?;
        let to = super::cast::onnx_dtype(code).ok_or_else(|| ctx.unsupported("to", format!("ONNX data type {code} is not supported")))?;
        Ok(Box::new(BitCast { to }))
    });
}

#[derive(Debug)]
struct BitCast {
    to: crate::DType,
}

impl Op for BitCast {
    fn op_type(&self) -> &str {
        "BitCast"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "BitCast")?;
        if x.dtype.size() != self.to.size() {
            bail_shape!("BitCast", "{} and {} have different widths", x.dtype, self.to);
        }
        Ok(vec![Fact::new(self.to, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "BitCast")?;
        let src: &[u8] = crate::dispatch_data!(DataRef, x.data, v => bytemuck::cast_slice(v));
        let out = &mut outputs[0].data;
        if let DataMut::Bool(d) = out {
            // Bools hold only 0 or 1 (ADR 0003): any nonzero byte reads as true.
            d.iter_mut().zip(src).for_each(|(d, &s)| *d = (s != 0) as u8);
            return Ok(());
        }
        let dst: &mut [u8] = crate::dispatch_data!(DataMut, out, v => bytemuck::cast_slice_mut(v));
        dst.copy_from_slice(src);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum BitKind {
    Left,
    Right,
    And,
    Or,
    Xor,
}

impl BitKind {
    fn name(self) -> &'static str {
        match self {
            BitKind::Left | BitKind::Right => "BitShift",
            BitKind::And => "BitwiseAnd",
            BitKind::Or => "BitwiseOr",
            BitKind::Xor => "BitwiseXor",
        }
    }
}

trait Bits: Copy {
    fn apply(kind: BitKind, a: Self, b: Self) -> Self;
}

macro_rules! bits {
    ($($t:ty),*) => {$(
        #[allow(unused_comparisons)]
        impl Bits for $t {
            #[inline]
            fn apply(kind: BitKind, a: $t, b: $t) -> $t {
                let in_range = b >= 0 && (b as u128) < <$t>::BITS as u128;
                match kind {
                    BitKind::Left if in_range => a.wrapping_shl(b as u32),
                    BitKind::Right if in_range => a >> (b as u32),
                    BitKind::Left => 0,
                    // Out-of-range right shifts fill with the sign bit.
                    BitKind::Right => if a < 0 { (0 as $t).wrapping_sub(1) } else { 0 },
                    BitKind::And => a & b,
                    BitKind::Or => a | b,
                    BitKind::Xor => a ^ b,
                }
            }
        }
    )*};
}
bits!(i8, u8, i16, u16, i32, u32, i64, u64);

#[derive(Debug)]
struct BitBinary {
    kind: BitKind,
}

impl Op for BitBinary {
    fn op_type(&self) -> &str {
        self.kind.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let op = self.kind.name();
        let (a, b) = (required(inputs, 0, op)?, required(inputs, 1, op)?);
        if a.dtype != b.dtype || !a.dtype.is_integer() {
            bail_shape!(op, "needs two integer inputs of one dtype, got {} and {}", a.dtype, b.dtype);
        }
        Ok(vec![Fact::new(a.dtype, broadcast_shapes(&[&a.shape, &b.shape], op)?)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = self.kind.name();
        let (a, b) = (required(inputs, 0, op)?, required(inputs, 1, op)?);
        let out = &mut outputs[0];
        let (ash, bsh, osh, kind) = (a.shape, b.shape, out.shape, self.kind);
        macro_rules! go {
            ($($v:ident, $t:ty);*) => {
                match (a.data, b.data, &mut out.data) {
                    $((DataRef::$v(x), DataRef::$v(y), DataMut::$v(o)) => map2(x, ash, y, bsh, o, osh, |x, y| <$t>::apply(kind, x, y)),)*
                    (x, _, _) => bail_shape!(op, "is not defined for {}", x.dtype()),
                }
            };
        }
        go!(I8, i8; U8, u8; I16, i16; U16, u16; I32, i32; U32, u32; I64, i64; U64, u64);
        Ok(())
    }
}

#[derive(Debug)]
struct BitwiseNot;

impl Op for BitwiseNot {
    fn op_type(&self) -> &str {
        "BitwiseNot"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "BitwiseNot")?;
        if !x.dtype.is_integer() {
            bail_shape!("BitwiseNot", "needs an integer input, got {}", x.dtype);
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "BitwiseNot")?;
        macro_rules! go {
            ($($v:ident);*) => {
                match (x.data, &mut outputs[0].data) {
                    $((DataRef::$v(x), DataMut::$v(o)) => o.iter_mut().zip(x).for_each(|(o, &x)| *o = !x),)*
                    (x, _) => bail_shape!("BitwiseNot", "is not defined for {}", x.dtype()),
                }
            };
        }
        go!(I8; U8; I16; U16; I32; U32; I64; U64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_follow_the_reference_at_the_edges() {
        assert_eq!(i8::apply(BitKind::Left, 64, 1), -128);
        assert_eq!(i8::apply(BitKind::Left, 1, 8), 0);
        assert_eq!(i8::apply(BitKind::Right, -128, 9), -1);
        assert_eq!(i32::apply(BitKind::Right, -8, 1), -4);
        assert_eq!(u8::apply(BitKind::Right, 16, 2), 4);
        assert_eq!(i32::apply(BitKind::Left, 3, -1), 0);
        assert_eq!(u64::apply(BitKind::Xor, 6, 3), 5);
    }
}
