//! Elementwise arithmetic, comparisons and logic with multidirectional broadcasting,
//! unary math, and `Where`.

use super::broadcast::{broadcast_shapes, broadcast_strides, for_each_offset, map2, map2_in_place};
use crate::{bail_shape, required, DType, DataMut, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::math::erf;
use half::{bf16, f16};
use std::sync::Arc;

pub fn register(r: &mut Registry) {
    use BinKind::*;
    for (name, kind) in [
        ("Add", Add),
        ("Sub", Sub),
        ("Mul", Mul),
        ("Div", Div),
        ("Pow", Pow),
        ("Equal", Equal),
        ("Greater", Greater),
        ("Less", Less),
        ("GreaterOrEqual", GreaterOrEqual),
        ("LessOrEqual", LessOrEqual),
        ("And", And),
        ("Or", Or),
        ("Xor", Xor),
    ] {
        r.register(name, binary_builder(kind));
    }
    r.register("Mod", |ctx| Ok(Box::new(Binary { kind: if ctx.int("fmod", 0)? == 1 { BinKind::FMod } else { BinKind::Mod } })));
    r.register("Sum", |_| Ok(Box::new(Variadic { kind: BinKind::Add, mean: false, name: "Sum" })));
    r.register("Mean", |_| Ok(Box::new(Variadic { kind: BinKind::Add, mean: true, name: "Mean" })));
    r.register("Max", |_| Ok(Box::new(Variadic { kind: BinKind::Max, mean: false, name: "Max" })));
    r.register("Min", |_| Ok(Box::new(Variadic { kind: BinKind::Min, mean: false, name: "Min" })));
    r.register("Where", |_| Ok(Box::new(Where)));
    r.register("Not", |_| Ok(Box::new(Not)));

    for (name, _) in UNARY_FNS.iter() {
        r.register(name, build_unary);
    }
}

fn binary_builder(kind: BinKind) -> crate::OpBuilder {
    // A non-capturing closure per kind keeps builders as plain fn pointers.
    macro_rules! b {
        ($k:expr) => {
            |_: &OpContext| Ok(Box::new(Binary { kind: $k }) as Box<dyn Op>)
        };
    }
    use BinKind::*;
    match kind {
        Add => b!(Add),
        Sub => b!(Sub),
        Mul => b!(Mul),
        Div => b!(Div),
        Pow => b!(Pow),
        Equal => b!(Equal),
        Greater => b!(Greater),
        Less => b!(Less),
        GreaterOrEqual => b!(GreaterOrEqual),
        LessOrEqual => b!(LessOrEqual),
        And => b!(And),
        Or => b!(Or),
        Xor => b!(Xor),
        _ => b!(Add),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BinKind {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
    Mod,
    FMod,
    Equal,
    Greater,
    Less,
    GreaterOrEqual,
    LessOrEqual,
    And,
    Or,
    Xor,
}

impl BinKind {
    fn is_comparison(self) -> bool {
        matches!(self, BinKind::Equal | BinKind::Greater | BinKind::Less | BinKind::GreaterOrEqual | BinKind::LessOrEqual)
    }
    fn is_logic(self) -> bool {
        matches!(self, BinKind::And | BinKind::Or | BinKind::Xor)
    }
    fn name(self) -> &'static str {
        match self {
            BinKind::Add => "Add",
            BinKind::Sub => "Sub",
            BinKind::Mul => "Mul",
            BinKind::Div => "Div",
            BinKind::Pow => "Pow",
            BinKind::Min => "Min",
            BinKind::Max => "Max",
            BinKind::Mod | BinKind::FMod => "Mod",
            BinKind::Equal => "Equal",
            BinKind::Greater => "Greater",
            BinKind::Less => "Less",
            BinKind::GreaterOrEqual => "GreaterOrEqual",
            BinKind::LessOrEqual => "LessOrEqual",
            BinKind::And => "And",
            BinKind::Or => "Or",
            BinKind::Xor => "Xor",
        }
    }
}

/// Arithmetic on one numeric type.
trait Arith: Copy + PartialOrd {
    fn arith(kind: BinKind, a: Self, b: Self) -> Self;
}

macro_rules! float_arith {
    ($t:ty) => {
        impl Arith for $t {
            #[inline(always)]
            fn arith(kind: BinKind, a: $t, b: $t) -> $t {
                match kind {
                    BinKind::Add => a + b,
                    BinKind::Sub => a - b,
                    BinKind::Mul => a * b,
                    BinKind::Div => a / b,
                    BinKind::Pow => a.powf(b),
                    BinKind::Min => {
                        if a.is_nan() || a < b {
                            a
                        } else {
                            b
                        }
                    }
                    BinKind::Max => {
                        if a.is_nan() || a > b {
                            a
                        } else {
                            b
                        }
                    }
                    BinKind::FMod => a % b,
                    // Python-style: the result takes the divisor's sign.
                    BinKind::Mod => {
                        let r = a % b;
                        if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
                            r + b
                        } else {
                            r
                        }
                    }
                    _ => <$t>::NAN,
                }
            }
        }
    };
}
float_arith!(f32);
float_arith!(f64);

macro_rules! int_arith {
    ($t:ty) => {
        #[allow(unused_comparisons)]
        impl Arith for $t {
            #[inline(always)]
            fn arith(kind: BinKind, a: $t, b: $t) -> $t {
                match kind {
                    BinKind::Add => a.wrapping_add(b),
                    BinKind::Sub => a.wrapping_sub(b),
                    BinKind::Mul => a.wrapping_mul(b),
                    // Integer division by zero has no defined result in ONNX; 0 instead of a panic.
                    BinKind::Div => {
                        if b == 0 {
                            0
                        } else {
                            a.wrapping_div(b)
                        }
                    }
                    BinKind::Pow => (a as f64).powf(b as f64) as $t,
                    BinKind::Min => a.min(b),
                    BinKind::Max => a.max(b),
                    BinKind::FMod => {
                        if b == 0 {
                            0
                        } else {
                            a.wrapping_rem(b)
                        }
                    }
                    // Python-style: the result takes the divisor's sign.
                    BinKind::Mod => {
                        if b == 0 {
                            0
                        } else {
                            let r = a.wrapping_rem(b);
                            if r != 0 && ((r < 0) != (b < 0)) {
                                r + b
                            } else {
                                r
                            }
                        }
                    }
                    _ => 0,
                }
            }
        }
    };
}
int_arith!(i64);
int_arith!(i32);
int_arith!(i8);
int_arith!(u8);
int_arith!(i16);
int_arith!(u16);
int_arith!(u32);
int_arith!(u64);

#[inline(always)]
fn compare<T: PartialOrd>(kind: BinKind, a: T, b: T) -> u8 {
    (match kind {
        BinKind::Equal => a == b,
        BinKind::Greater => a > b,
        BinKind::Less => a < b,
        BinKind::GreaterOrEqual => a >= b,
        _ => a <= b,
    }) as u8
}

#[derive(Debug)]
pub(crate) struct Binary {
    pub(crate) kind: BinKind,
}

fn binary_fact(kind: BinKind, a: &Fact, b: &Fact) -> Result<Fact> {
    let op = kind.name();
    if kind != BinKind::Pow && a.dtype != b.dtype {
        bail_shape!(op, "inputs have different dtypes {} and {}", a.dtype, b.dtype);
    }
    if kind.is_logic() && a.dtype != DType::Bool {
        bail_shape!(op, "needs bool inputs, got {}", a.dtype);
    }
    let shape = broadcast_shapes(&[&a.shape, &b.shape], op)?;
    let dtype = if kind.is_comparison() || kind.is_logic() { DType::Bool } else { a.dtype };
    Ok(Fact::new(dtype, shape))
}

fn run_binary(kind: BinKind, a: &TensorRef, b: &TensorRef, out: &mut TensorMut) -> Result<()> {
    let (ash, bsh) = (a.shape, b.shape);
    let osh = out.shape;
    let op = kind.name();
    match (&mut out.data, a.data, b.data) {
        (DataMut::F32(o), DataRef::F32(x), DataRef::F32(y)) => match kind {
            BinKind::Add => map2(x, ash, y, bsh, o, osh, |x, y| x + y),
            BinKind::Sub => map2(x, ash, y, bsh, o, osh, |x, y| x - y),
            BinKind::Mul => map2(x, ash, y, bsh, o, osh, |x, y| x * y),
            BinKind::Div => map2(x, ash, y, bsh, o, osh, |x, y| x / y),
            _ => map2(x, ash, y, bsh, o, osh, |x, y| f32::arith(kind, x, y)),
        },
        (DataMut::F32(o), DataRef::F32(x), y) if kind == BinKind::Pow => {
            let y: Vec<f32> = TensorRef { shape: bsh, data: y }.to_f32_vec();
            map2(x, ash, &y, bsh, o, osh, f32::powf)
        }
        (DataMut::I64(o), DataRef::I64(x), DataRef::I64(y)) => map2(x, ash, y, bsh, o, osh, |x, y| i64::arith(kind, x, y)),
        (DataMut::I32(o), DataRef::I32(x), DataRef::I32(y)) => map2(x, ash, y, bsh, o, osh, |x, y| i32::arith(kind, x, y)),
        (DataMut::I8(o), DataRef::I8(x), DataRef::I8(y)) => map2(x, ash, y, bsh, o, osh, |x, y| i8::arith(kind, x, y)),
        (DataMut::U8(o), DataRef::U8(x), DataRef::U8(y)) => map2(x, ash, y, bsh, o, osh, |x, y| u8::arith(kind, x, y)),
        (DataMut::I16(o), DataRef::I16(x), DataRef::I16(y)) => map2(x, ash, y, bsh, o, osh, |x, y| i16::arith(kind, x, y)),
        (DataMut::U16(o), DataRef::U16(x), DataRef::U16(y)) => map2(x, ash, y, bsh, o, osh, |x, y| u16::arith(kind, x, y)),
        (DataMut::U32(o), DataRef::U32(x), DataRef::U32(y)) => map2(x, ash, y, bsh, o, osh, |x, y| u32::arith(kind, x, y)),
        (DataMut::U64(o), DataRef::U64(x), DataRef::U64(y)) => map2(x, ash, y, bsh, o, osh, |x, y| u64::arith(kind, x, y)),
        (DataMut::F64(o), DataRef::F64(x), DataRef::F64(y)) => map2(x, ash, y, bsh, o, osh, |x, y| f64::arith(kind, x, y)),
        // Half precision: each element is computed in f32 and rounded once, as
        // onnxruntime's Cast-wrapped f16 nodes do (docs/adr/0014-f16-compute.md).
        (DataMut::F16(o), DataRef::F16(x), DataRef::F16(y)) => {
            map2(x, ash, y, bsh, o, osh, |x, y| f16::from_f32(f32::arith(kind, x.to_f32(), y.to_f32())))
        }
        (DataMut::BF16(o), DataRef::BF16(x), DataRef::BF16(y)) => {
            map2(x, ash, y, bsh, o, osh, |x, y| bf16::from_f32(f32::arith(kind, x.to_f32(), y.to_f32())))
        }
        // Pow's exponent may have another numeric type than the base (T1, T2 in the spec).
        (DataMut::F64(o), DataRef::F64(x), y) if kind == BinKind::Pow => {
            let y = TensorRef { shape: bsh, data: y }.to_f64_vec();
            map2(x, ash, &y, bsh, o, osh, f64::powf)
        }
        (DataMut::F16(o), DataRef::F16(x), y) if kind == BinKind::Pow => {
            let y = TensorRef { shape: bsh, data: y }.to_f32_vec();
            map2(x, ash, &y, bsh, o, osh, |x, y| f16::from_f32(x.to_f32().powf(y)))
        }
        (DataMut::I64(o), DataRef::I64(x), y) if kind == BinKind::Pow => {
            let y = TensorRef { shape: bsh, data: y }.to_f64_vec();
            map2(x, ash, &y, bsh, o, osh, |x, y| (x as f64).powf(y) as i64)
        }
        (DataMut::I32(o), DataRef::I32(x), y) if kind == BinKind::Pow => {
            let y = TensorRef { shape: bsh, data: y }.to_f64_vec();
            map2(x, ash, &y, bsh, o, osh, |x, y| (x as f64).powf(y) as i32)
        }
        (DataMut::Bool(o), x, y) if kind.is_logic() => {
            let (x, y) = (bools(x, op)?, bools(y, op)?);
            map2(x, ash, y, bsh, o, osh, |x, y| match kind {
                BinKind::And => x & y,
                BinKind::Or => x | y,
                _ => x ^ y,
            })
        }
        (DataMut::Bool(o), DataRef::F32(x), DataRef::F32(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::I64(x), DataRef::I64(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::I32(x), DataRef::I32(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::Bool(x), DataRef::Bool(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::U8(x), DataRef::U8(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::I8(x), DataRef::I8(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::I16(x), DataRef::I16(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::U16(x), DataRef::U16(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::U32(x), DataRef::U32(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::U64(x), DataRef::U64(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::F64(x), DataRef::F64(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::F16(x), DataRef::F16(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (DataMut::Bool(o), DataRef::BF16(x), DataRef::BF16(y)) => map2(x, ash, y, bsh, o, osh, |x, y| compare(kind, x, y)),
        (_, x, _) => bail_shape!(op, "is not implemented for {}", x.dtype()),
    }
    Ok(())
}

fn bools<'a>(d: DataRef<'a>, op: &str) -> Result<&'a [u8]> {
    match d {
        DataRef::Bool(v) => Ok(v),
        other => Err(Error::shape(op, format!("needs bool inputs, got {}", other.dtype()))),
    }
}

impl Op for Binary {
    fn op_type(&self) -> &str {
        self.kind.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let a = required(inputs, 0, self.op_type())?;
        let b = required(inputs, 1, self.op_type())?;
        Ok(vec![binary_fact(self.kind, a, b)?])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let a = required(inputs, 0, self.op_type())?;
        let b = required(inputs, 1, self.op_type())?;
        run_binary(self.kind, &a, &b, &mut outputs[0])
    }
    fn in_place_input(&self) -> Option<usize> {
        // Arithmetic keeps the dtype; the planner also checks that `a` has the output's shape.
        let keeps_dtype = !(self.kind.is_comparison() || self.kind.is_logic() || self.kind == BinKind::Pow);
        keeps_dtype.then_some(0)
    }
    fn run_in_place(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let b = required(inputs, 1, self.op_type())?;
        let out = &mut outputs[0];
        let (osh, kind) = (out.shape, self.kind);
        match (&mut out.data, b.data) {
            // The four common kinds get their own loop (one `match` per element defeats vectorization).
            (DataMut::F32(o), DataRef::F32(y)) => match kind {
                BinKind::Add => map2_in_place(o, osh, y, b.shape, |x, y| x + y),
                BinKind::Sub => map2_in_place(o, osh, y, b.shape, |x, y| x - y),
                BinKind::Mul => map2_in_place(o, osh, y, b.shape, |x, y| x * y),
                BinKind::Div => map2_in_place(o, osh, y, b.shape, |x, y| x / y),
                _ => map2_in_place(o, osh, y, b.shape, |x, y| f32::arith(kind, x, y)),
            },
            (DataMut::I64(o), DataRef::I64(y)) => map2_in_place(o, osh, y, b.shape, |x, y| i64::arith(kind, x, y)),
            (DataMut::I32(o), DataRef::I32(y)) => map2_in_place(o, osh, y, b.shape, |x, y| i32::arith(kind, x, y)),
            (DataMut::I8(o), DataRef::I8(y)) => map2_in_place(o, osh, y, b.shape, |x, y| i8::arith(kind, x, y)),
            (DataMut::U8(o), DataRef::U8(y)) => map2_in_place(o, osh, y, b.shape, |x, y| u8::arith(kind, x, y)),
            (DataMut::I16(o), DataRef::I16(y)) => map2_in_place(o, osh, y, b.shape, |x, y| i16::arith(kind, x, y)),
            (DataMut::U16(o), DataRef::U16(y)) => map2_in_place(o, osh, y, b.shape, |x, y| u16::arith(kind, x, y)),
            (DataMut::U32(o), DataRef::U32(y)) => map2_in_place(o, osh, y, b.shape, |x, y| u32::arith(kind, x, y)),
            (DataMut::U64(o), DataRef::U64(y)) => map2_in_place(o, osh, y, b.shape, |x, y| u64::arith(kind, x, y)),
            (DataMut::F64(o), DataRef::F64(y)) => map2_in_place(o, osh, y, b.shape, |x, y| f64::arith(kind, x, y)),
            (DataMut::F16(o), DataRef::F16(y)) => {
                map2_in_place(o, osh, y, b.shape, |x, y| f16::from_f32(f32::arith(kind, x.to_f32(), y.to_f32())))
            }
            (DataMut::BF16(o), DataRef::BF16(y)) => {
                map2_in_place(o, osh, y, b.shape, |x, y| bf16::from_f32(f32::arith(kind, x.to_f32(), y.to_f32())))
            }
            (_, y) => bail_shape!(self.op_type(), "is not implemented for {}", y.dtype()),
        }
        Ok(())
    }
}

/// Sum, Mean, Max, Min over any number of broadcast inputs.
#[derive(Debug)]
struct Variadic {
    kind: BinKind,
    mean: bool,
    name: &'static str,
}

impl Op for Variadic {
    fn op_type(&self) -> &str {
        self.name
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let facts: Vec<&Fact> = inputs.iter().flatten().copied().collect();
        let first = facts.first().ok_or_else(|| Error::shape(self.name, "needs at least one input"))?;
        if facts.iter().any(|f| f.dtype != first.dtype) {
            bail_shape!(self.name, "inputs must share one dtype");
        }
        let shapes: Vec<&[usize]> = facts.iter().map(|f| f.shape.as_slice()).collect();
        Ok(vec![Fact::new(first.dtype, broadcast_shapes(&shapes, self.name)?)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let ins: Vec<&TensorRef> = inputs.iter().flatten().collect();
        let out = &mut outputs[0];
        if ins.len() == 1 {
            let osh = out.shape;
            return broadcast_copy(ins[0], osh, out);
        }
        run_binary(self.kind, ins[0], ins[1], out)?;
        for x in &ins[2..] {
            // Accumulate: out = out (op) x, through a copy of the running result.
            let acc = out_as_ref_copy(out);
            let acc_ref = TensorRef { shape: out.shape, data: acc.as_ref() };
            run_binary(self.kind, &acc_ref, x, out)?;
        }
        if self.mean {
            let n = ins.len() as f64;
            match &mut out.data {
                DataMut::F32(o) => o.iter_mut().for_each(|v| *v /= n as f32),
                DataMut::F64(o) => o.iter_mut().for_each(|v| *v /= n),
                DataMut::F16(o) => o.iter_mut().for_each(|v| *v = f16::from_f32(v.to_f32() / n as f32)),
                DataMut::BF16(o) => o.iter_mut().for_each(|v| *v = bf16::from_f32(v.to_f32() / n as f32)),
                other => bail_shape!("Mean", "is implemented for float dtypes, got {}", other.dtype()),
            }
        }
        Ok(())
    }
}

fn out_as_ref_copy(out: &TensorMut) -> crate::TensorData {
    out.data.to_owned()
}

/// Copies `x` broadcast to `out_shape` into `out` (any dtype).
pub(crate) fn broadcast_copy(x: &TensorRef, out_shape: &[usize], out: &mut TensorMut) -> Result<()> {
    let strides = broadcast_strides(x.shape, out_shape);
    crate::with_same_dtype!(x.data, &mut out.data, |src, dst| for_each_offset(out_shape, [&strides], |i, [s]| dst[i] = src[s]))
}

#[derive(Debug)]
struct Where;

impl Op for Where {
    fn op_type(&self) -> &str {
        "Where"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let c = required(inputs, 0, "Where")?;
        let x = required(inputs, 1, "Where")?;
        let y = required(inputs, 2, "Where")?;
        if c.dtype != DType::Bool || x.dtype != y.dtype {
            bail_shape!("Where", "needs a bool condition and branches of one dtype, got {}, {}, {}", c.dtype, x.dtype, y.dtype);
        }
        Ok(vec![Fact::new(x.dtype, broadcast_shapes(&[&c.shape, &x.shape, &y.shape], "Where")?)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let c = required(inputs, 0, "Where")?;
        let x = required(inputs, 1, "Where")?;
        let y = required(inputs, 2, "Where")?;
        let out = &mut outputs[0];
        let osh = out.shape;
        let (sc, sx, sy) = (broadcast_strides(c.shape, osh), broadcast_strides(x.shape, osh), broadcast_strides(y.shape, osh));
        let cond = c.bools()?;
        macro_rules! go {
            ($a:expr, $b:expr, $d:expr) => {{
                let (a, b, d) = ($a, $b, $d);
                for_each_offset(osh, [&sc, &sx, &sy], |i, [ic, ix, iy]| d[i] = if cond[ic] != 0 { a[ix] } else { b[iy] });
            }};
        }
        match (x.data, y.data, &mut out.data) {
            (DataRef::F32(a), DataRef::F32(b), DataMut::F32(d)) => go!(a, b, d),
            (DataRef::F16(a), DataRef::F16(b), DataMut::F16(d)) => go!(a, b, d),
            (DataRef::I8(a), DataRef::I8(b), DataMut::I8(d)) => go!(a, b, d),
            (DataRef::U8(a), DataRef::U8(b), DataMut::U8(d)) => go!(a, b, d),
            (DataRef::I32(a), DataRef::I32(b), DataMut::I32(d)) => go!(a, b, d),
            (DataRef::I64(a), DataRef::I64(b), DataMut::I64(d)) => go!(a, b, d),
            (DataRef::Bool(a), DataRef::Bool(b), DataMut::Bool(d)) => go!(a, b, d),
            (DataRef::BF16(a), DataRef::BF16(b), DataMut::BF16(d)) => go!(a, b, d),
            (DataRef::F64(a), DataRef::F64(b), DataMut::F64(d)) => go!(a, b, d),
            (DataRef::I16(a), DataRef::I16(b), DataMut::I16(d)) => go!(a, b, d),
            (DataRef::U16(a), DataRef::U16(b), DataMut::U16(d)) => go!(a, b, d),
            (DataRef::U32(a), DataRef::U32(b), DataMut::U32(d)) => go!(a, b, d),
            (DataRef::U64(a), DataRef::U64(b), DataMut::U64(d)) => go!(a, b, d),
            _ => bail_shape!("Where", "branch dtypes differ"),
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Not;

impl Op for Not {
    fn op_type(&self) -> &str {
        "Not"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Not")?;
        Ok(vec![Fact::new(DType::Bool, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Not")?.bools()?;
        for (o, &v) in outputs[0].bools_mut()?.iter_mut().zip(x) {
            *o = (v == 0) as u8;
        }
        Ok(())
    }
}

/// An f32 function applied elementwise (Neg and Abs also on integers).
pub(crate) struct Unary {
    pub(crate) name: &'static str,
    pub(crate) f: Arc<dyn Fn(f32) -> f32 + Send + Sync>,
    /// A vectorized in-place kernel for the whole f32 slice, where one exists
    /// (calling `f` per element costs an indirect call and defeats vectorization).
    pub(crate) slice_kernel: Option<fn(&mut [f32])>,
}

impl std::fmt::Debug for Unary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unary({})", self.name)
    }
}

/// Builds any op of [`UNARY_FNS`], looked up by the node's op type.
fn build_unary(ctx: &OpContext) -> Result<Box<dyn Op>> {
    let (name, f) = UNARY_FNS.iter().find(|(n, _)| *n == ctx.op_type).ok_or_else(|| Error::shape(ctx.op_type, "no kernel"))?;
    Ok(Box::new(Unary { name, f: Arc::new(*f), slice_kernel: unary_slice_kernel(name) }))
}

/// The vectorized kernels of [`cairn_kernels::vmath`] (same accuracy class as `f`:
/// exp ~2e-7, erf 1e-6 relative), for the unary ops that dominate where they occur
/// (Erf in unfused GELUs of quantized transformers, Exp in hand-written softmaxes).
fn unary_slice_kernel(name: &str) -> Option<fn(&mut [f32])> {
    match name {
        "Exp" => Some(cairn_kernels::vmath::exp_in_place),
        "Erf" => Some(cairn_kernels::vmath::erf_in_place),
        _ => None,
    }
}

static UNARY_FNS: [(&str, fn(f32) -> f32); 19] = [
    ("Sqrt", f32::sqrt),
    ("Exp", f32::exp),
    ("Log", f32::ln),
    ("Reciprocal", |x| 1.0 / x),
    ("Floor", f32::floor),
    ("Ceil", f32::ceil),
    ("Round", f32::round_ties_even),
    ("Sin", f32::sin),
    ("Cos", f32::cos),
    ("Tan", f32::tan),
    ("Asin", f32::asin),
    ("Acos", f32::acos),
    ("Atan", f32::atan),
    ("Sinh", f32::sinh),
    ("Cosh", f32::cosh),
    ("Erf", erf),
    ("Sign", |x| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            x
        }
    }),
    ("Neg", |x| -x),
    ("Abs", f32::abs),
];

/// The f64 form of every op of [`UNARY_FNS`] (computed in f64, as onnx's reference does).
fn unary_f64(name: &str, x: f64) -> Option<f64> {
    Some(match name {
        "Sqrt" => x.sqrt(),
        "Exp" => x.exp(),
        "Log" => x.ln(),
        "Reciprocal" => 1.0 / x,
        "Floor" => x.floor(),
        "Ceil" => x.ceil(),
        "Round" => x.round_ties_even(),
        "Sin" => x.sin(),
        "Cos" => x.cos(),
        "Tan" => x.tan(),
        "Asin" => x.asin(),
        "Acos" => x.acos(),
        "Atan" => x.atan(),
        "Sinh" => x.sinh(),
        "Cosh" => x.cosh(),
        // f32's erf is accurate to 2e-7, within the tolerance f64 outputs are compared with.
        "Erf" => erf(x as f32) as f64,
        "Sign" => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        "Neg" => -x,
        "Abs" => x.abs(),
        _ => return None,
    })
}

impl Op for Unary {
    fn op_type(&self) -> &str {
        self.name
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name)?;
        let int_ok = matches!(self.name, "Neg" | "Abs" | "Sign") && matches!(x.dtype, DType::I64 | DType::I32 | DType::I8);
        if !matches!(x.dtype, DType::F32 | DType::F64) && !int_ok {
            bail_shape!(self.name, "is implemented for f32 and f64, got {}", x.dtype);
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name)?;
        let f = &self.f;
        macro_rules! int {
            ($x:expr, $o:expr) => {
                for (o, &v) in $o.iter_mut().zip($x) {
                    *o = match self.name {
                        "Neg" => v.wrapping_neg(),
                        "Abs" => v.wrapping_abs(),
                        _ => v.signum(),
                    };
                }
            };
        }
        match (x.data, &mut outputs[0].data) {
            (DataRef::F32(x), DataMut::F32(o)) => match self.slice_kernel {
                Some(kernel) => {
                    o.copy_from_slice(x);
                    kernel(o);
                }
                None => o.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v)),
            },
            (DataRef::F64(x), DataMut::F64(o)) => {
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = unary_f64(self.name, v).ok_or_else(|| Error::shape(self.name, "has no f64 kernel"))?;
                }
            }
            (DataRef::I64(x), DataMut::I64(o)) => int!(x, o),
            (DataRef::I32(x), DataMut::I32(o)) => int!(x, o),
            (DataRef::I8(x), DataMut::I8(o)) => int!(x, o),
            (x, _) => bail_shape!(self.name, "is not implemented for {}", x.dtype()),
        }
        Ok(())
    }
    fn in_place_input(&self) -> Option<usize> {
        // Only the f32-only ops with a slice kernel: the output is the input, transformed.
        self.slice_kernel.map(|_| 0)
    }
    fn run_in_place(&self, _inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let kernel = self.slice_kernel.ok_or_else(|| Error::shape(self.name, "cannot run in place"))?;
        // The planner asks before it knows the dtype: f64 values are transformed here too.
        if let DataMut::F64(o) = &mut outputs[0].data {
            for v in o.iter_mut() {
                *v = unary_f64(self.name, *v).ok_or_else(|| Error::shape(self.name, "has no f64 kernel"))?;
            }
            return Ok(());
        }
        kernel(outputs[0].f32s_mut()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    fn run2(kind: BinKind, a: Tensor, b: Tensor) -> Tensor {
        let op = Binary { kind };
        crate::plan::run_owned(&op, &[Some(Arc::new(a)), Some(Arc::new(b))]).unwrap().remove(0)
    }

    #[test]
    fn broadcasting_add_and_int_division() {
        let a = Tensor::from_f32(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let b = Tensor::from_f32(vec![3], vec![10., 20., 30.]).unwrap();
        assert_eq!(run2(BinKind::Add, a, b).f32s().unwrap(), &[11., 22., 33., 14., 25., 36.]);
        let a = Tensor::from_i64(vec![2, 1], vec![7, -7]).unwrap();
        let b = Tensor::from_i64(vec![1, 2], vec![2, 0]).unwrap();
        assert_eq!(run2(BinKind::Div, a, b).i64s().unwrap(), &[3, 0, -3, 0]);
    }

    #[test]
    fn erf_is_accurate() {
        for &(x, want) in &[(0.1f32, 0.112462916f32), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (2.5, 0.999_593), (-1.5, -0.966_105_16)] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }
}
