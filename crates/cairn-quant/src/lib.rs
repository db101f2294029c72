//! Cairn's model optimizer. Every step is a graph-to-graph rewrite of the IR into
//! *standard* ONNX operators, so its result can be saved and run by any engine:
//! - [`calibrate`]: activation ranges observed on real inputs (min-max, percentile, MSE,
//!   KL divergence);
//! - [`quantize`]: weights int8 symmetric per output channel, activations u8 asymmetric
//!   per tensor, written as QuantizeLinear/DequantizeLinear pairs (QDQ; see
//!   docs/adr/0007-int8-as-qdq.md), which Cairn's loader fuses onto its int8 kernels;
//! - [`dynamic`]: MatMul weights int8, activations quantized at run time (transformers);
//! - [`prune`]: structured channel pruning of inverted-residual blocks;
//! - [`sensitivity`]: per-layer sensitivity to quantization and pruning, and its uses;
//! - [`widths`]: hidden channels in importance order with compensation, for widths
//!   chosen at run time (and compensated offline pruning);
//! - [`bn_prior`]: the training-data statistics BatchNormalizations carry (for widths);
//! - [`fidelity`]: how closely a model's outputs follow a reference's.

pub mod bn_prior;
pub mod calibrate;
pub mod dynamic;
mod entropy;
mod error;
pub mod fidelity;
pub mod prune;
pub mod quantize;
pub mod sensitivity;
pub mod widths;

pub use error::{Error, Result};
