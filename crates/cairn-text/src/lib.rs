//! Text on the device: Hugging Face tokenizers ([`TextTokenizer`]), pooling, and the
//! embedding and classification pipelines ([`TextModel`]) that the CLI, the edge server and
//! the browser module share.
//!
//! Tokenization is the maintained `tokenizers` crate (built with its pure-Rust regex engine so
//! it compiles to wasm32), checked token for token against the Python package by
//! `tests/tokenizer_parity.rs`; what Cairn adds is the glue: truncation and padding from the
//! bundle's task, the model's integer input dtypes, pooling and normalization.

mod error;
mod pipeline;
pub mod pooling;
mod tokenizer;

pub use cairn_bundle::text_task::{Pooling, TaskKind, TextTask};
pub use error::{Error, Result};
pub use pipeline::{Classification, EmbedOptions, Embeddings, Label, TextModel};
pub use tokenizer::{Batch, Encoded, TextTokenizer, MAX_TEXT_BYTES};
