//! LSTM, GRU and RNN (opsets 7-22): every direction (bidirectional included),
//! `sequence_lens`, initial states, LSTM peepholes and `input_forget`, every activation of
//! the spec with its alpha/beta, `clip`, GRU's `linear_before_reset` and the `layout`
//! attribute (opset 14: batch-major X and outputs).
//!
//! Algorithm (as onnxruntime's CPU kernels): the input projection `X W^T + biases` of all
//! time steps is one GEMM per direction; each step then adds the recurrent product
//! `H R^T` (a vector-matrix product at batch 1, a GEMM for larger batches) and applies the
//! gate equations on whole gate rows with the vectorized activations. f16 tensors are
//! computed in f32 (docs/adr/0014-f16-compute.md).
//!
//! W and R are used as GEMM operands packed for this machine ([`PackedB`]): constant ones
//! once at load by the `fuse` pass ([`prepacked`], like MatMul and Conv weights), computed
//! ones at each run. The batch-1 recurrent product streams the packed R panel by panel
//! ([`gemv_packed`]); see docs/adr/0028-recurrent-prepacked-weights.md.

use super::float_io::{check_float, f32_values, write_f32};
use crate::{bail_shape, required, DType, Error, Fact, Node, Op, OpContext, Registry, Result, Tensor, TensorMut, TensorRef};
use cairn_kernels::gemv::gemv_packed;
use cairn_kernels::vmath::{sigmoid_in_place, tanh_in_place};
use cairn_kernels::{gemm, Bias, Epilogue, Isa, LhsOperand, MatRef, PackedB, RhsOperand, Transpose};
use std::sync::Arc;

pub fn register(r: &mut Registry) {
    r.register("LSTM", |ctx| Ok(Box::new(Recurrent::read(ctx, Cell::Lstm)?)));
    r.register("GRU", |ctx| Ok(Box::new(Recurrent::read(ctx, Cell::Gru)?)));
    r.register("RNN", |ctx| Ok(Box::new(Recurrent::read(ctx, Cell::Rnn)?)));
}

/// The three cells: their gate count and default activations.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    Rnn,
    Gru,
    Lstm,
}

impl Cell {
    fn name(self) -> &'static str {
        match self {
            Cell::Rnn => "RNN",
            Cell::Gru => "GRU",
            Cell::Lstm => "LSTM",
        }
    }

    /// Gates per step: RNN 1 (i); GRU 3 (z, r, h); LSTM 4 (i, o, f, c), in ONNX's order.
    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }

    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &["Tanh"],
            Cell::Gru => &["Sigmoid", "Tanh"],
            Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// The activations the recurrent ops accept, with their alpha and beta.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Func {
    Relu,
    Tanh,
    Sigmoid,
    Affine(f32, f32),
    LeakyRelu(f32),
    ThresholdedRelu(f32),
    ScaledTanh(f32, f32),
    HardSigmoid(f32, f32),
    Elu(f32),
    Softsign,
    Softplus,
}

impl Func {
    /// Parses one activation, taking its alpha and beta from the attribute lists in order
    /// (only functions that have an alpha or beta consume one, as onnxruntime does;
    /// exhausted lists give the defaults of the standalone operators).
    fn parse(name: &str, alphas: &mut impl Iterator<Item = f32>, betas: &mut impl Iterator<Item = f32>) -> Option<Func> {
        let mut alpha = |default: f32| alphas.next().unwrap_or(default);
        Some(match name.to_ascii_lowercase().as_str() {
            "relu" => Func::Relu,
            "tanh" => Func::Tanh,
            "sigmoid" => Func::Sigmoid,
            "softsign" => Func::Softsign,
            "softplus" => Func::Softplus,
            "leakyrelu" => Func::LeakyRelu(alpha(0.01)),
            "thresholdedrelu" => Func::ThresholdedRelu(alpha(1.0)),
            "elu" => Func::Elu(alpha(1.0)),
            "affine" => Func::Affine(alpha(1.0), betas.next().unwrap_or(0.0)),
            "scaledtanh" => Func::ScaledTanh(alpha(1.0), betas.next().unwrap_or(1.0)),
            "hardsigmoid" => Func::HardSigmoid(alpha(0.2), betas.next().unwrap_or(0.5)),
            _ => return None,
        })
    }

    fn apply(self, xs: &mut [f32]) {
        match self {
            Func::Sigmoid => sigmoid_in_place(xs),
            Func::Tanh => tanh_in_place(xs),
            Func::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
            Func::Affine(a, b) => xs.iter_mut().for_each(|x| *x = a * *x + b),
            Func::LeakyRelu(a) => xs.iter_mut().for_each(|x| *x = if *x < 0.0 { a * *x } else { *x }),
            Func::ThresholdedRelu(a) => xs.iter_mut().for_each(|x| *x = if *x > a { *x } else { 0.0 }),
            Func::ScaledTanh(a, b) => {
                xs.iter_mut().for_each(|x| *x *= b);
                tanh_in_place(xs);
                xs.iter_mut().for_each(|x| *x *= a);
            }
            Func::HardSigmoid(a, b) => xs.iter_mut().for_each(|x| *x = (a * *x + b).clamp(0.0, 1.0)),
            Func::Elu(a) => xs.iter_mut().for_each(|x| *x = if *x < 0.0 { a * (x.exp() - 1.0) } else { *x }),
            Func::Softsign => xs.iter_mut().for_each(|x| *x /= 1.0 + x.abs()),
            Func::Softplus => xs.iter_mut().for_each(|x| *x = if *x > 20.0 { *x } else { x.exp().ln_1p() }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    fn count(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }

    /// Whether direction `d` (0 or 1) runs backwards in time.
    fn reversed(self, d: usize) -> bool {
        self == Direction::Reverse || (self == Direction::Bidirectional && d == 1)
    }
}

#[derive(Debug)]
struct Recurrent {
    cell: Cell,
    hidden: Option<usize>,
    direction: Direction,
    /// `cell.default_activations().len()` functions per direction.
    funcs: Vec<Vec<Func>>,
    clip: Option<f32>,
    input_forget: bool,
    linear_before_reset: bool,
    /// 0: X is [seq, batch, input]; 1: [batch, seq, input] (and the outputs likewise).
    batch_major: bool,
    /// Constant W and R, packed at load (the node's W and R inputs are then omitted).
    packed: Option<Prepacked>,
}

/// W and R packed once, with the shapes they had (checked against X like inputs).
#[derive(Debug)]
struct Prepacked {
    w_shape: Vec<usize>,
    r_shape: Vec<usize>,
    dirs: Vec<PackedDir>,
}

/// One direction's W and R as GEMM right-hand sides.
#[derive(Debug)]
struct PackedDir {
    /// `W^T`, `[I, G*H]`: the input projection of every step is one GEMM.
    w: PackedB,
    /// `R^T` of the rows multiplied by H at each step, `[H, G*H]` (`[H, 2H]` for a GRU
    /// without `linear_before_reset`, whose `R_h` waits for the reset gate).
    r: PackedB,
    /// That GRU's `R_h^T`, `[H, H]`, multiplied by `r ⊙ H`.
    r_h: Option<PackedB>,
}

impl PackedDir {
    fn bytes(&self) -> usize {
        self.w.bytes() + self.r.bytes() + self.r_h.as_ref().map_or(0, PackedB::bytes)
    }
}

/// The `fuse` pass's entry: node `node` (LSTM, GRU or RNN) with its constant f32 `w` and
/// `r` packed once here instead of at every run. `None` when their shapes do not fit the
/// node's attributes: the unchanged node then reports that when it is planned.
pub(crate) fn prepacked(node: &Node, opset: i64, w: &Tensor, r: &Tensor) -> Result<Option<Node>> {
    let cell = match node.op_type.as_str() {
        "LSTM" => Cell::Lstm,
        "GRU" => Cell::Gru,
        "RNN" => Cell::Rnn,
        _ => return Ok(None),
    };
    if w.dtype() != DType::F32 || r.dtype() != DType::F32 {
        return Ok(None);
    }
    let ctx = OpContext::new(&node.op_type, opset, &node.attrs, node.inputs.len(), node.outputs.len());
    let mut op = Recurrent::read(&ctx, cell).map_err(|e| e.at_node(&node.name, &node.op_type))?;
    let (ws, rs) = (w.shape(), r.shape());
    let (g, dirs) = (cell.gates(), op.direction.count());
    let hidden = op.hidden.unwrap_or(rs.get(2).copied().unwrap_or(0));
    if ws.len() != 3 || rs.len() != 3 || ws[..2] != [dirs, g * hidden] || rs != [dirs, g * hidden, hidden] {
        return Ok(None);
    }
    let dims = Dims { seq: 0, batch: 0, input: ws[2], hidden, dirs };
    let packed = op.pack(w.f32s()?, r.f32s()?, dims);
    op.packed = Some(Prepacked { w_shape: ws.to_vec(), r_shape: rs.to_vec(), dirs: packed });
    let mut inputs = node.inputs.clone();
    inputs[1] = None;
    inputs[2] = None;
    Ok(Some(Node { inputs, op: Arc::new(op), ..node.clone() }))
}

/// The sizes every input and output is checked against.
#[derive(Clone, Copy, Debug)]
struct Dims {
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: usize,
}

impl Recurrent {
    fn read(ctx: &OpContext, cell: Cell) -> Result<Recurrent> {
        let op = cell.name();
        let direction = match ctx.string("direction", "forward")?.as_str() {
            "forward" => Direction::Forward,
            "reverse" => Direction::Reverse,
            "bidirectional" => Direction::Bidirectional,
            other => return Err(ctx.unsupported("direction", format!("'{other}' (expected forward, reverse or bidirectional)"))),
        };
        let hidden = match ctx.int_opt("hidden_size")? {
            Some(h) if h > 0 && h <= 1 << 20 => Some(h as usize),
            Some(h) => return Err(Error::InvalidAttr { attr: "hidden_size".into(), detail: format!("{h} must be positive") }),
            None => None,
        };
        let per_dir = cell.default_activations().len();
        let names: Vec<String> = ctx.strings_opt("activations")?.unwrap_or_else(|| {
            let one = cell.default_activations().iter().map(|s| s.to_string());
            one.cycle().take(per_dir * direction.count()).collect()
        });
        // A forward-only node may list just its own functions; a bidirectional one both sets.
        if names.len() != per_dir * direction.count() && !(names.len() == per_dir && direction.count() == 1) {
            return Err(Error::InvalidAttr {
                attr: "activations".into(),
                detail: format!("{op} needs {per_dir} activations per direction ({} in all), got {names:?}", per_dir * direction.count()),
            });
        }
        let alphas = ctx.floats_opt("activation_alpha")?.unwrap_or_default();
        let betas = ctx.floats_opt("activation_beta")?.unwrap_or_default();
        let (mut alphas, mut betas) = (alphas.into_iter(), betas.into_iter());
        let mut funcs = Vec::new();
        for group in names.chunks(per_dir) {
            let parsed = group
                .iter()
                .map(|n| Func::parse(n, &mut alphas, &mut betas).ok_or_else(|| ctx.unsupported("activations", format!("'{n}'"))))
                .collect::<Result<Vec<_>>>()?;
            funcs.push(parsed);
        }
        let clip = match ctx.float_opt("clip")? {
            Some(c) if c > 0.0 => Some(c),
            Some(c) => return Err(Error::InvalidAttr { attr: "clip".into(), detail: format!("{c} must be positive") }),
            None => None,
        };
        let input_forget = cell == Cell::Lstm && ctx.int("input_forget", 0)? != 0;
        let linear_before_reset = cell == Cell::Gru && ctx.int("linear_before_reset", 0)? != 0;
        let batch_major = match ctx.int("layout", 0)? {
            0 => false,
            1 => true,
            other => return Err(ctx.unsupported("layout", format!("{other} (expected 0 or 1)"))),
        };
        if ctx.n_outputs > if cell == Cell::Lstm { 3 } else { 2 } {
            bail_shape!(op, "has at most {} outputs, the node declares {}", if cell == Cell::Lstm { 3 } else { 2 }, ctx.n_outputs);
        }
        Ok(Recurrent { cell, hidden, direction, funcs, clip, input_forget, linear_before_reset, batch_major, packed: None })
    }

    fn op(&self) -> &'static str {
        self.cell.name()
    }

    /// Checks every input's shape and returns the sizes.
    fn dims(&self, shapes: &[Option<&[usize]>]) -> Result<Dims> {
        let op = self.op();
        let shape = |i: usize| shapes.get(i).copied().flatten();
        let x = shape(0).ok_or_else(|| Error::shape(op, "input 0 (X) is required"))?;
        let (w, r) = match &self.packed {
            Some(p) => (p.w_shape.as_slice(), p.r_shape.as_slice()),
            None => (
                shape(1).ok_or_else(|| Error::shape(op, "input 1 (W) is required"))?,
                shape(2).ok_or_else(|| Error::shape(op, "input 2 (R) is required"))?,
            ),
        };
        if x.len() != 3 || w.len() != 3 || r.len() != 3 {
            bail_shape!(op, "X, W and R must be 3-D, got {x:?}, {w:?}, {r:?}");
        }
        let (seq, batch) = if self.batch_major { (x[1], x[0]) } else { (x[0], x[1]) };
        let dirs = self.direction.count();
        let hidden = self.hidden.unwrap_or(r[2]);
        let g = self.cell.gates();
        if w != [dirs, g * hidden, x[2]] || r != [dirs, g * hidden, hidden] {
            bail_shape!(
                op,
                "with {dirs} direction(s), hidden size {hidden} and input size {}: W must be {:?} and R {:?}, got {w:?} and {r:?}",
                x[2],
                [dirs, g * hidden, x[2]],
                [dirs, g * hidden, hidden]
            );
        }
        let expect = |i: usize, name: &str, want: &[usize]| -> Result<()> {
            match shape(i) {
                Some(s) if s != want => Err(Error::shape(op, format!("{name} must be {want:?}, got {s:?}"))),
                _ => Ok(()),
            }
        };
        expect(3, "B", &[dirs, 2 * g * hidden])?;
        expect(4, "sequence_lens", &[batch])?;
        let state = if self.batch_major { [batch, dirs, hidden] } else { [dirs, batch, hidden] };
        expect(5, "initial_h", &state)?;
        if self.cell == Cell::Lstm {
            expect(6, "initial_c", &state)?;
            expect(7, "P", &[dirs, 3 * hidden])?;
        }
        Ok(Dims { seq, batch, input: x[2], hidden, dirs })
    }

    fn output_shapes(&self, d: Dims) -> [Vec<usize>; 2] {
        let Dims { seq, batch, hidden, dirs, .. } = d;
        if self.batch_major {
            [vec![batch, seq, dirs, hidden], vec![batch, dirs, hidden]]
        } else {
            [vec![seq, dirs, batch, hidden], vec![dirs, batch, hidden]]
        }
    }
}

impl Op for Recurrent {
    fn op_type(&self) -> &str {
        self.op()
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let op = self.op();
        let x = required(inputs, 0, op)?;
        check_float(x.dtype, op)?;
        if self.packed.is_some() && x.dtype != DType::F32 {
            bail_shape!(op, "input 0 must be f32 like its W and R, got {}", x.dtype);
        }
        for (i, f) in inputs.iter().enumerate() {
            if let Some(f) = f {
                let want_int = i == 4;
                if (want_int && f.dtype != DType::I32) || (!want_int && f.dtype != x.dtype) {
                    bail_shape!(op, "input {i} must be {}, got {}", if want_int { DType::I32 } else { x.dtype }, f.dtype);
                }
            }
        }
        let shapes: Vec<Option<&[usize]>> = inputs.iter().map(|f| f.map(|f| f.shape.as_slice())).collect();
        let dims = self.dims(&shapes)?;
        let [y, state] = self.output_shapes(dims);
        let n_out = if self.cell == Cell::Lstm { 3 } else { 2 };
        Ok((0..n_out).map(|i| Fact::new(x.dtype, if i == 0 { y.clone() } else { state.clone() })).collect())
    }

    fn macs(&self, inputs: &[Option<&Fact>], _outputs: &[Fact]) -> u64 {
        let shapes: Vec<Option<&[usize]>> = inputs.iter().map(|f| f.map(|f| f.shape.as_slice())).collect();
        self.dims(&shapes).map_or(0, |d| (d.dirs * d.seq * d.batch * self.cell.gates() * d.hidden * (d.input + d.hidden)) as u64)
    }

    fn built_by_pass(&self) -> bool {
        self.packed.is_some()
    }

    fn owned_parameters(&self) -> (usize, usize) {
        self.packed.as_ref().map_or((0, 0), |p| {
            let count = p.w_shape.iter().product::<usize>() + p.r_shape.iter().product::<usize>();
            (count, p.dirs.iter().map(PackedDir::bytes).sum())
        })
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = self.op();
        let shapes: Vec<Option<&[usize]>> = inputs.iter().map(|t| t.map(|t| t.shape)).collect();
        let dims = self.dims(&shapes)?;
        let values = |i: usize| inputs.get(i).copied().flatten().map(|t| f32_values(&t, op)).transpose();
        let x = f32_values(&required(inputs, 0, op)?, op)?;
        let packed_now;
        let packed = match &self.packed {
            Some(p) => p.dirs.as_slice(),
            None => {
                let (w, r) = (values(1)?.unwrap_or_default(), values(2)?.unwrap_or_default());
                packed_now = self.pack(&w, &r, dims);
                packed_now.as_slice()
            }
        };
        let (b, h0, c0, p) = (values(3)?, values(5)?, values(6)?, values(7)?);
        let lens = match inputs.get(4).copied().flatten() {
            None => vec![dims.seq; dims.batch],
            Some(t) => t
                .i32s()?
                .iter()
                .map(|&l| {
                    usize::try_from(l).ok().filter(|&l| l <= dims.seq).ok_or_else(|| {
                        Error::Input(format!("{op}: sequence_lens value {l} is outside 0..={} (the sequence length of X)", dims.seq))
                    })
                })
                .collect::<Result<_>>()?,
        };
        let (hd, batch) = (dims.hidden, dims.batch);
        let mut y = vec![0.0f32; dims.seq * dims.dirs * batch * hd];
        let mut y_h = vec![0.0f32; dims.dirs * batch * hd];
        let mut y_c = vec![0.0f32; dims.dirs * batch * hd];
        let g = self.cell.gates();
        let mut scratch = Scratch::default();
        for d in 0..dims.dirs {
            let weights = Weights {
                packed: &packed[d],
                b: b.as_deref().map(|b| &b[d * 2 * g * hd..][..2 * g * hd]),
                p: p.as_deref().map(|p| &p[d * 3 * hd..][..3 * hd]),
            };
            let state_of = |v: &Option<std::borrow::Cow<[f32]>>| -> Vec<f32> {
                let mut s = vec![0.0f32; batch * hd];
                if let Some(v) = v {
                    for bi in 0..batch {
                        s[bi * hd..][..hd].copy_from_slice(&v[self.state_offset(dims, d, bi)..][..hd]);
                    }
                }
                s
            };
            let mut h = state_of(&h0);
            let mut c = state_of(&c0);
            let run = DirectionRun { op: self, dims, d, lens: &lens, weights };
            run.forward(&x, &mut h, &mut c, &mut y, &mut scratch);
            for bi in 0..batch {
                let at = self.state_offset(dims, d, bi);
                y_h[at..][..hd].copy_from_slice(&h[bi * hd..][..hd]);
                y_c[at..][..hd].copy_from_slice(&c[bi * hd..][..hd]);
            }
        }
        for (i, (out, data)) in outputs.iter_mut().zip([y, y_h, y_c]).enumerate() {
            if out.len() != data.len() {
                bail_shape!(op, "output {i} holds {} values, the op computed {}", out.len(), data.len());
            }
            write_f32(out, op, |o| {
                o.copy_from_slice(&data);
                Ok(())
            })?;
        }
        Ok(())
    }
}

impl Recurrent {
    /// Packs every direction's W and R (`[dirs, G*H, I]` and `[dirs, G*H, H]`, checked
    /// by `dims`) as the GEMM's right-hand sides `W^T` and `R^T`.
    fn pack(&self, w: &[f32], r: &[f32], dims: Dims) -> Vec<PackedDir> {
        let (hd, input, isa) = (dims.hidden, dims.input, Isa::current());
        let gh = self.cell.gates() * hd;
        // The GRU without linear_before_reset multiplies R_h after the reset gate is known.
        let split_rh = self.cell == Cell::Gru && !self.linear_before_reset;
        let rec_rows = if split_rh { 2 * hd } else { gh };
        let transposed =
            |rows: &[f32], ld: usize, k: usize, n: usize| PackedB::new(isa, MatRef::new(rows, ld.max(1), Transpose::Yes), k, n);
        (0..dims.dirs)
            .map(|d| {
                let r_d = &r[d * gh * hd..][..gh * hd];
                PackedDir {
                    w: transposed(&w[d * gh * input..][..gh * input], input, input, gh),
                    r: transposed(&r_d[..rec_rows * hd], hd, hd, rec_rows),
                    r_h: split_rh.then(|| transposed(&r_d[2 * hd * hd..], hd, hd, hd)),
                }
            })
            .collect()
    }

    /// Where batch row `b` of direction `d` sits in initial_h/initial_c/Y_h/Y_c.
    fn state_offset(&self, dims: Dims, d: usize, b: usize) -> usize {
        let block = if self.batch_major { b * dims.dirs + d } else { d * dims.batch + b };
        block * dims.hidden
    }

    /// Where step `t` of batch row `b` of direction `d` sits in Y.
    fn y_offset(&self, dims: Dims, t: usize, d: usize, b: usize) -> usize {
        let block = if self.batch_major { (b * dims.seq + t) * dims.dirs + d } else { (t * dims.dirs + d) * dims.batch + b };
        block * dims.hidden
    }

    /// Row of the input projection for step `t`, batch row `b` (X's own row order).
    fn x_row(&self, dims: Dims, t: usize, b: usize) -> usize {
        if self.batch_major {
            b * dims.seq + t
        } else {
            t * dims.batch + b
        }
    }
}

/// One direction's weights: W and R packed, B `[2*G*H]`, P `[3*H]`.
struct Weights<'a> {
    packed: &'a PackedDir,
    b: Option<&'a [f32]>,
    p: Option<&'a [f32]>,
}

/// Buffers reused across directions.
#[derive(Default)]
struct Scratch {
    /// The input projection of every step: `[seq * batch, G*H]`.
    xw: Vec<f32>,
    /// The recurrent product of one step: `[batch, G*H]`.
    rec: Vec<f32>,
    /// GRU with `linear_before_reset = 0`: `r ⊙ H` and its product with `R_h`, `[batch, H]` each.
    reset_h: Vec<f32>,
    reset_rec: Vec<f32>,
}

struct DirectionRun<'a> {
    op: &'a Recurrent,
    dims: Dims,
    d: usize,
    lens: &'a [usize],
    weights: Weights<'a>,
}

impl DirectionRun<'_> {
    /// Runs every step of this direction from state (`h`, `c`), writing Y.
    fn forward(&self, x: &[f32], h: &mut [f32], c: &mut [f32], y: &mut [f32], s: &mut Scratch) {
        let Dims { seq, batch, input, hidden: hd, .. } = self.dims;
        let (cell, gh) = (self.op.cell, self.op.cell.gates() * hd);
        // Biases that are plain sums go into the projection; GRU's R_bh with
        // linear_before_reset is applied inside the reset product instead.
        let mut bias = vec![0.0f32; gh];
        if let Some(b) = self.weights.b {
            for (j, v) in bias.iter_mut().enumerate() {
                let rb = if self.op.linear_before_reset && j >= 2 * hd { 0.0 } else { b[gh + j] };
                *v = b[j] + rb;
            }
        }
        s.xw.resize(seq * batch * gh, 0.0);
        let epilogue = Epilogue { bias: Bias::PerCol(&bias), residual: None, activation: cairn_kernels::Activation::Identity };
        gemm(
            seq * batch,
            gh,
            input,
            LhsOperand::Strided { mat: MatRef::new(x, input, Transpose::No), alpha: 1.0 },
            RhsOperand::Packed(&self.weights.packed.w),
            &mut s.xw,
            gh,
            false,
            &epilogue,
        );
        s.rec.resize(batch * gh, 0.0);
        if cell == Cell::Gru {
            s.reset_h.resize(batch * hd, 0.0);
            s.reset_rec.resize(batch * hd, 0.0);
        }
        let reversed = self.op.direction.reversed(self.d);
        let funcs = &self.op.funcs[self.d.min(self.op.funcs.len() - 1)];
        let split_rh = self.weights.packed.r_h.as_ref();
        for step in 0..seq {
            recurrent_product(&self.weights.packed.r, h, batch, gh, &mut s.rec);
            for b in 0..batch {
                let len = self.lens[b];
                if step >= len {
                    continue;
                }
                let t = if reversed { len - 1 - step } else { step };
                let gates = &mut s.rec[b * gh..][..gh];
                let xw = &s.xw[self.op.x_row(self.dims, t, b) * gh..][..gh];
                gates.iter_mut().zip(xw).for_each(|(g, x)| *g += x);
                let hb = &mut h[b * hd..][..hd];
                match cell {
                    Cell::Rnn => {
                        self.clip(gates);
                        funcs[0].apply(gates);
                        hb.copy_from_slice(gates);
                    }
                    Cell::Lstm => self.lstm_step(funcs, gates, hb, &mut c[b * hd..][..hd]),
                    Cell::Gru if split_rh.is_none() => {
                        let r_bh = self.weights.b.map(|bias| &bias[gh + 2 * hd..][..hd]);
                        let (zr, hg) = gates.split_at_mut(2 * hd);
                        self.clip(zr);
                        funcs[0].apply(zr);
                        // gates[2H..] holds X W_h + W_bh + H R_h: take R_h's part back out to scale it by r.
                        let rh = &mut s.reset_rec[b * hd..][..hd];
                        rh.copy_from_slice(&s.xw[self.op.x_row(self.dims, t, b) * gh + 2 * hd..][..hd]);
                        for j in 0..hd {
                            let rec_h = hg[j] - rh[j] + r_bh.map_or(0.0, |v| v[j]);
                            hg[j] = rh[j] + zr[hd + j] * rec_h;
                        }
                        gru_finish(self, funcs, zr, hg, hb);
                    }
                    Cell::Gru => {
                        let (zr, _) = gates.split_at_mut(2 * hd);
                        self.clip(zr);
                        funcs[0].apply(zr);
                        s.reset_h[b * hd..][..hd].iter_mut().zip(&zr[hd..]).zip(hb.iter()).for_each(|((o, r), hv)| *o = r * hv);
                    }
                }
            }
            if let Some(r_h) = split_rh {
                // (r ⊙ H) R_h^T for the rows that are still running, then the h gate.
                recurrent_product(r_h, &s.reset_h, batch, hd, &mut s.reset_rec);
                for b in 0..batch {
                    let len = self.lens[b];
                    if step >= len {
                        continue;
                    }
                    let t = if reversed { len - 1 - step } else { step };
                    let (zr, _) = s.rec[b * gh..][..gh].split_at_mut(2 * hd);
                    let hg = &mut s.reset_rec[b * hd..][..hd];
                    hg.iter_mut().zip(&s.xw[self.op.x_row(self.dims, t, b) * gh + 2 * hd..][..hd]).for_each(|(v, x)| *v += x);
                    gru_finish(self, funcs, zr, hg, &mut h[b * hd..][..hd]);
                }
            }
            for b in 0..batch {
                let len = self.lens[b];
                if step < len {
                    let t = if reversed { len - 1 - step } else { step };
                    y[self.op.y_offset(self.dims, t, self.d, b)..][..hd].copy_from_slice(&h[b * hd..][..hd]);
                }
            }
        }
    }

    fn clip(&self, v: &mut [f32]) {
        if let Some(c) = self.op.clip {
            v.iter_mut().for_each(|x| *x = x.clamp(-c, c));
        }
    }

    /// One LSTM step of one batch row: `gates` holds the pre-activations (i, o, f, c).
    fn lstm_step(&self, funcs: &[Func], gates: &mut [f32], h: &mut [f32], c: &mut [f32]) {
        let hd = h.len();
        let (i_o, f_c) = gates.split_at_mut(2 * hd);
        let (gi, go) = i_o.split_at_mut(hd);
        let (gf, gc) = f_c.split_at_mut(hd);
        if let Some(p) = self.weights.p {
            let (pi, po_pf) = p.split_at(hd);
            let pf = &po_pf[hd..];
            for j in 0..hd {
                gi[j] += pi[j] * c[j];
                gf[j] += pf[j] * c[j];
            }
        }
        self.clip(gi);
        funcs[0].apply(gi);
        if self.op.input_forget {
            gf.iter_mut().zip(gi.iter()).for_each(|(f, i)| *f = 1.0 - i);
        } else {
            self.clip(gf);
            funcs[0].apply(gf);
        }
        self.clip(gc);
        funcs[1].apply(gc);
        for j in 0..hd {
            c[j] = gf[j] * c[j] + gi[j] * gc[j];
        }
        if let Some(p) = self.weights.p {
            go.iter_mut().zip(&p[hd..2 * hd]).zip(c.iter()).for_each(|((o, p), c)| *o += p * c);
        }
        self.clip(go);
        funcs[0].apply(go);
        // h(C) goes through the gate buffer of c, no longer needed.
        gc.copy_from_slice(c);
        funcs[2].apply(gc);
        h.iter_mut().zip(go.iter()).zip(gc.iter()).for_each(|((h, o), v)| *h = o * v);
    }
}

/// GRU's last part: `h~ = g(clip(hg))`, `H = (1 - z) ⊙ h~ + z ⊙ H`.
fn gru_finish(run: &DirectionRun, funcs: &[Func], zr: &[f32], hg: &mut [f32], h: &mut [f32]) {
    run.clip(hg);
    funcs[1].apply(hg);
    let z = &zr[..h.len()];
    h.iter_mut().zip(z).zip(hg.iter()).for_each(|((h, z), n)| *h = (1.0 - z) * n + z * *h);
}

/// `out[b] = h[b] R^T` for every batch row: `r` is `R^T` packed (`[H, rows]`); `out` has
/// row stride `ld`. At batch 1 a vector-matrix product that reads R once, streaming.
fn recurrent_product(r: &PackedB, h: &[f32], batch: usize, ld: usize, out: &mut [f32]) {
    let (hd, rows) = (r.rows(), r.cols());
    if batch == 1 {
        gemv_packed(r, &h[..hd], &mut out[..rows], false);
        return;
    }
    gemm(
        batch,
        rows,
        hd,
        LhsOperand::Strided { mat: MatRef::new(h, hd.max(1), Transpose::No), alpha: 1.0 },
        RhsOperand::Packed(r),
        out,
        ld,
        false,
        &Epilogue::default(),
    );
}

#[cfg(test)]
mod tests {
    use crate::passes::fuse::fuse;
    use crate::{Attr, DType, Dim, Graph, Node, NodeSpec, Registry, Session, Tensor, ValueInfo};
    use std::collections::HashMap;
    use std::sync::Arc;

    fn tensor(shape: Vec<usize>, seed: f32) -> Arc<Tensor> {
        let n = shape.iter().product();
        Arc::new(Tensor::from_f32(shape, (0..n).map(|i| 0.4 * (i as f32 * 0.37 + seed).sin()).collect()).unwrap())
    }

    /// One recurrent node over `x` [seq, batch, input] with W, R, B and initial_h constant.
    fn graph(op: &str, gates: usize, batch: usize, attrs: Vec<(&str, Attr)>) -> Graph {
        let (seq, input, hidden, dirs) = (5, 7, 40, 2);
        let initializers = HashMap::from([
            ("w".to_string(), tensor(vec![dirs, gates * hidden, input], 0.1)),
            ("r".to_string(), tensor(vec![dirs, gates * hidden, hidden], 0.2)),
            ("b".to_string(), tensor(vec![dirs, 2 * gates * hidden], 0.3)),
            ("h0".to_string(), tensor(vec![dirs, batch, hidden], 0.4)),
        ]);
        let mut attrs: Vec<(String, Attr)> = attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        attrs.push(("hidden_size".into(), Attr::Int(hidden as i64)));
        attrs.push(("direction".into(), Attr::Str("bidirectional".into())));
        let spec = NodeSpec {
            name: "rec".into(),
            domain: String::new(),
            op_type: op.into(),
            attrs: attrs.into_iter().collect(),
            inputs: ["x", "w", "r", "b", "", "h0"].iter().map(|i| (!i.is_empty()).then(|| i.to_string())).collect(),
            outputs: vec!["y".into(), "y_h".into()],
        };
        let node = Node::build(spec, 14, Registry::global()).unwrap();
        let value = |name: &str, dims: Option<Vec<Dim>>| ValueInfo { name: name.into(), dtype: DType::F32, dims };
        let x_dims = [seq, batch, input].map(Dim::Known).to_vec();
        Graph {
            inputs: vec![value("x", Some(x_dims))],
            outputs: vec![value("y", None), value("y_h", None)],
            initializers,
            nodes: vec![node],
            opset: 14,
        }
        .validated()
        .unwrap()
    }

    /// The fuse pass packs constant W and R into the node (dropping those initializers, keeping
    /// B and initial_h that the node still reads), and the results match the unpacked node's,
    /// at batch 1 (the vector-matrix product) and batch 3 (the GEMM), for the GRU that
    /// multiplies R_h separately too.
    #[test]
    fn prepacked_weights_give_the_same_results() {
        let cases = [
            ("LSTM", 4, vec![]),
            ("GRU", 3, vec![("linear_before_reset", Attr::Int(0))]),
            ("GRU", 3, vec![("linear_before_reset", Attr::Int(1))]),
            ("RNN", 1, vec![]),
        ];
        for (op, gates, attrs) in cases {
            for batch in [1, 3] {
                let original = graph(op, gates, batch, attrs.clone());
                let (packed, stats) = fuse(original.clone()).unwrap();
                assert_eq!(stats.recurrent_packed, 1, "{op}");
                assert!(
                    !packed.initializers.contains_key("w") && !packed.initializers.contains_key("r"),
                    "{op}: W and R now live in the node"
                );
                assert!(
                    packed.initializers.contains_key("b") && packed.initializers.contains_key("h0"),
                    "{op}: B and initial_h are still read"
                );
                assert!(packed.nodes[0].op.built_by_pass() && packed.nodes[0].op.owned_parameters().1 > 0);
                let n = 5 * batch * 7;
                let x = Tensor::from_f32(vec![5, batch, 7], (0..n).map(|i| (i as f32 * 0.11).cos()).collect()).unwrap();
                let run = |g: Graph| Session::new(g.validated().unwrap()).run(HashMap::from([("x".to_string(), x.clone())])).unwrap();
                for ((name, want), (_, got)) in run(original).into_iter().zip(run(packed)) {
                    for (a, b) in want.f32s().unwrap().iter().zip(got.f32s().unwrap()) {
                        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{op} batch {batch} {name}: {a} vs {b}");
                    }
                }
            }
        }
    }
}
