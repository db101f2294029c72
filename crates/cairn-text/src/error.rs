use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("the tokenizer file is not one the Hugging Face tokenizers library reads: {0} (hint: pass the tokenizer.json saved with the model, e.g. by `tokenizer.save(\"tokenizer.json\")`; vocab.txt or tokenizer_config.json alone are not enough)")]
    InvalidTokenizer(String),
    #[error("the tokenizer's maximum length of {max_length} tokens leaves no room for the {special} special tokens every text gets (hint: a maximum length above {special}, e.g. the model's own 128-512: `cairn pack --max-length`)")]
    MaxLengthTooShort { max_length: usize, special: usize },
    #[error("cannot tokenize: {0}")]
    Encode(String),
    #[error("a text of {bytes} bytes is more than the {max} bytes one text may have (hint: split long documents into passages)")]
    TextTooLarge { bytes: usize, max: usize },
    #[error("the model's input '{0}' is not one a text pipeline feeds (input_ids, attention_mask, token_type_ids, position_ids)")]
    UnknownInput(String),
    #[error("the model has no input_ids input (its inputs: {0}): is it a text model?")]
    NoInputIds(String),
    #[error("the model output '{name}' has shape {shape:?}, but {task} needs {needs}")]
    OutputShape { name: String, shape: Vec<usize>, task: &'static str, needs: &'static str },
    #[error("the model has no output named '{0}'")]
    NoOutput(String),
    #[error("{0}")]
    Model(#[from] cairn_core::Error),
    #[error("this is a {have} model; {want} needs a {need} bundle")]
    WrongTask { have: &'static str, want: &'static str, need: &'static str },
}

pub type Result<T> = std::result::Result<T, Error>;
