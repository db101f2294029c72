//! The optimizer's error type: one line naming the tensor, node or input at fault.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] cairn_core::Error),
    #[error("calibration input {input}: {detail}")]
    Input { input: String, detail: String },
    #[error("activation '{tensor}' {detail}")]
    Activation { tensor: String, detail: String },
    #[error("{0}")]
    Model(String),
}

pub type Result<T> = std::result::Result<T, Error>;
