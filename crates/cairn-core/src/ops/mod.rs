//! Operator families. Each module owns a family: its attribute parsing (by opset),
//! shape function and kernel calls, and registers its ops in `register`.

pub mod broadcast;

mod activation;
mod affine_grid;
mod attention;
mod bitwise;
mod cast;
mod causal_conv;
mod col2im;
mod contrib;
mod control;
pub(crate) mod conv;
mod conv_transpose;
mod crop;
mod cumulative;
mod deform_conv;
mod dynamic;
mod einsum;
mod elementwise;
mod flex_attention;
mod float_io;
mod fused_attention;
mod grid_sample;
mod group_norm;
#[cfg(feature = "image-decoder")]
mod image_decoder;
mod indexing;
mod layout;
mod linear_attention;
mod loss;
mod math;
mod matmul;
mod matrix;
mod max_roi_pool;
mod ml;
mod norm;
mod optimizer;
mod pieces;
mod pool;
mod qconv;
mod qelementwise;
mod qmatmul;
mod qparams;
mod quant;
mod random;
mod recurrent;
mod reduce;
mod resize;
mod roi_align;
mod rotary;
mod sequence;
mod signal;
mod space_depth;
mod string_ops;
mod tensor_scatter;
mod tfidf;
mod topk;
mod unpool;
mod vector_norm;

pub(crate) use cast::convert;
pub(crate) use conv::FusedConv;
pub(crate) use fused_attention::{FusedAttention, SeqDim};
pub(crate) use matmul::{FusedMatMul, MatMul, MatMulForm};
pub(crate) use qconv::{QConv, QConvWeights};
pub(crate) use qelementwise::MS_DOMAIN;
pub(crate) use qmatmul::{QMatMul, QMatMulWeights};
pub(crate) use qparams::{Bias as QBias, QOutSpec};
pub(crate) use recurrent::prepacked as prepacked_recurrent;
pub use string_ops::string_constant_node;

use crate::Registry;

pub fn register_all(r: &mut Registry) {
    activation::register(r);
    cast::register(r);
    control::register(r);
    contrib::register(r);
    conv::register(r);
    dynamic::register(r);
    conv_transpose::register(r);
    elementwise::register(r);
    grid_sample::register(r);
    layout::register(r);
    matmul::register(r);
    norm::register(r);
    pool::register(r);
    qconv::register(r);
    qelementwise::register(r);
    qmatmul::register(r);
    quant::register(r);
    recurrent::register(r);
    reduce::register(r);
    resize::register(r);
    roi_align::register(r);
    max_roi_pool::register(r);
    random::register(r);
    string_ops::register(r);
    indexing::register(r);
    loss::register(r);
    matrix::register(r);
    vector_norm::register(r);
    attention::register(r);
    bitwise::register(r);
    cumulative::register(r);
    math::register(r);
    space_depth::register(r);
    topk::register(r);
    sequence::register(r);
    signal::register(r);
    crop::register(r);
    einsum::register(r);
    causal_conv::register(r);
    linear_attention::register(r);
    rotary::register(r);
    tensor_scatter::register(r);
    affine_grid::register(r);
    col2im::register(r);
    unpool::register(r);
    flex_attention::register(r);
    group_norm::register(r);
    tfidf::register(r);
    deform_conv::register(r);
    ml::register(r);
    optimizer::register(r);
    #[cfg(feature = "image-decoder")]
    image_decoder::register(r);
}

/// Writes the row-major multi-index of flat position `i` in a tensor of shape `dims` to `out`
/// (the window and block walks of pooling and Col2Im).
pub(crate) fn unravel(mut i: usize, dims: &[usize], out: &mut [usize]) {
    for d in (0..dims.len()).rev() {
        out[d] = i % dims[d];
        i /= dims[d];
    }
}
