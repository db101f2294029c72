//! Text on the device: Hugging Face tokenizers ([`TextTokenizer`]), pooling, and the
//! embedding and classification pipelines ([`TextPipeline`]) that the CLI, the edge server and
//! the browser module share.
//!
//! Tokenization is the maintained `tokenizers` crate (built with its pure-Rust regex engine so
//! it compiles to wasm32), checked token for token against the Python package by
//! `tests/tokenizer_parity.rs`; what Cairn adds is the glue: truncation and padding from the
//! bundle's task, the model's integer input dtypes, pooling and normalization.

//!
//! The `tokenizer` feature (on by default) brings in the `tokenizers` crate; without it the
//! crate still runs text models on batches tokenized elsewhere ([`TextModel`], [`Batch`]),
//! which is how the browser engine stays small for apps that have no text model.

mod batch;
mod error;
mod input;
mod pipeline;
pub mod pooling;
#[cfg(feature = "tokenizer")]
mod tokenizer;
#[cfg(feature = "tokenizer")]
mod tokenizer_checks;

pub use batch::Batch;
pub use cairn_bundle::text_task::{Pooling, TaskKind, TextTask};
pub use error::{Error, Result};
pub use input::TextInput;
#[cfg(feature = "tokenizer")]
pub use pipeline::TextPipeline;
pub use pipeline::{Aggregation, Classification, EmbedOptions, Embeddings, Entity, Label, TextModel};
#[cfg(feature = "tokenizer")]
pub use tokenizer::{Encoded, TextTokenizer, TokenizedText, MAX_TEXT_BYTES};
