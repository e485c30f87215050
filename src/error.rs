//! One error enum per layer. Every variant names *what* was wrong and *where* (file, byte offset,
//! tensor), because a user staring at a broken 100 MB file needs more than "parse error".

use thiserror::Error;

/// Errors from reading bytes of a model file (GGUF, safetensors, config.json, tokenizer.json).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FormatError {
    #[error("{file}: cannot read file: {message}")]
    Io { file: String, message: String },

    #[error("{file}: not a GGUF file: magic at offset 0 is {found:02x?}, expected \"GGUF\"")]
    BadMagic { file: String, found: Vec<u8> },

    #[error("{file}: unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion { file: String, version: u32 },

    #[error("{file}: truncated at offset {offset}: reading {what} needs {needed} bytes, {available} left")]
    Truncated { file: String, offset: u64, what: String, needed: u64, available: u64 },

    #[error("{file}: implausible {what} = {value} at offset {offset} (limit {limit})")]
    Implausible { file: String, offset: u64, what: String, value: u64, limit: u64 },

    #[error("{file}: invalid UTF-8 in {what} at offset {offset}")]
    InvalidUtf8 { file: String, offset: u64, what: String },

    #[error("{file}: unknown metadata value type {type_id} for key {key:?} at offset {offset}")]
    UnknownValueType { file: String, offset: u64, key: String, type_id: u32 },

    #[error("{file}: unknown tensor type id {type_id} in tensor {tensor:?} (tensor info at offset {offset})")]
    UnknownTensorType { file: String, offset: u64, tensor: String, type_id: u32 },

    #[error("{file}: unsupported tensor type {ty} in tensor {tensor:?}")]
    UnsupportedTensorType { file: String, tensor: String, ty: String },

    #[error("{file}: tensor {tensor:?}: {message}")]
    BadTensor { file: String, tensor: String, message: String },

    #[error("{file}: tensor {tensor:?} spans bytes {start}..{end} but the file has {file_len} bytes")]
    TensorOutOfBounds { file: String, tensor: String, start: u64, end: u64, file_len: u64 },

    #[error("{file}: tensors {first:?} and {second:?} overlap at data offset {offset}")]
    OverlappingTensors { file: String, first: String, second: String, offset: u64 },

    #[error("{file}: duplicate {what} {name:?}")]
    Duplicate { file: String, what: String, name: String },

    #[error("{file}: tensor {tensor:?} has a non-finite value ({value}) at element {index}")]
    NonFinite { file: String, tensor: String, index: u64, value: f32 },

    #[error("{file}: metadata key {key:?} is missing")]
    MissingMetadata { file: String, key: String },

    #[error("{file}: metadata key {key:?} has the wrong type: expected {expected}, found {found}")]
    WrongMetadataType { file: String, key: String, expected: String, found: String },

    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// Errors from assembling a runnable model out of a parsed file.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    #[error(transparent)]
    Format(#[from] FormatError),

    #[error("{file}: unsupported architecture {architecture:?} (supported: {supported})")]
    UnsupportedArchitecture { file: String, architecture: String, supported: String },

    #[error("{file}: bad config: {message}")]
    BadConfig { file: String, message: String },

    #[error("{file}: tensor {tensor:?} is missing")]
    MissingTensor { file: String, tensor: String },

    #[error("{file}: tensor {tensor:?} has shape {found:?}, expected {expected:?}")]
    WrongShape { file: String, tensor: String, found: Vec<u64>, expected: Vec<u64> },

    #[error("tokenizer: {message}")]
    Tokenizer { message: String },

    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfRange { id: u32, vocab: usize },

    #[error(transparent)]
    Gpu(#[from] GpuError),

    #[error(transparent)]
    Quant(#[from] Box<QuantError>),

    #[error("the prompt is empty: it encodes to no tokens")]
    EmptyPrompt,

    /// An evaluation or a calibration pass predicts each token from the ones before it: it needs
    /// a token and the one after it.
    #[error("{what} needs at least 2 tokens (a token and the next one to predict); it was given {tokens}")]
    TooFewTokens { what: &'static str, tokens: usize },

    /// A forward asked to start at a block with a residual stream that does not fit.
    #[error("resuming the forward at block {block}: {message}")]
    Resume { block: usize, message: String },

    #[error("the prompt has {tokens} tokens, more than the model's context of {context}")]
    PromptTooLong { tokens: usize, context: usize },

    #[error("chat template: {message}")]
    ChatTemplate { message: String },
}

/// Errors from a study's operations (`crate::study`): the engine's own, or a request the study
/// cannot serve as it stands (no GPU for a GPU-only view, a bad argument), named so the page and
/// the CLI can show it as it is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum StudyError {
    #[error(transparent)]
    Model(#[from] ModelError),

    /// `what` needs the GPU and the model runs on the CPU, for `reason`.
    #[error("{what} needs WebGPU; this model runs on the CPU ({reason})")]
    NeedsGpu { what: &'static str, reason: String },

    #[error("{what}: {message}")]
    Invalid { what: &'static str, message: String },

    /// The caller asked the running operation to stop (a newer request replaces it); nothing it
    /// would have changed was changed.
    #[error("{what} was cancelled")]
    Cancelled { what: &'static str },
}

impl From<GpuError> for StudyError {
    fn from(e: GpuError) -> Self {
        StudyError::Model(e.into())
    }
}

impl From<QuantError> for StudyError {
    fn from(e: QuantError) -> Self {
        StudyError::Model(e.into())
    }
}

impl From<FormatError> for StudyError {
    fn from(e: FormatError) -> Self {
        StudyError::Model(e.into())
    }
}

/// Errors from the GPU: no adapter, limits, validation, device loss, out of memory, bad shapes.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GpuError {
    #[error("no GPU adapter: {message}")]
    NoAdapter { message: String },

    #[error("the GPU adapter {adapter:?} refused a device: {message}")]
    RequestDevice { adapter: String, message: String },

    #[error("{what} needs {bytes} bytes, more than this device's {limit_name} of {limit} bytes")]
    TooLarge { what: String, bytes: u64, limit_name: &'static str, limit: u64 },

    #[error("GPU validation error in {what}: {message}")]
    Validation { what: String, message: String },

    #[error("GPU out of memory in {what}: {message}")]
    OutOfMemory { what: String, message: String },

    #[error("the GPU device was lost: {message}")]
    DeviceLost { message: String },

    #[error("reading back {what} from the GPU failed: {message}")]
    Readback { what: String, message: String },

    #[error("kernel {kernel}: {message}")]
    Shape { kernel: &'static str, message: String },

    /// A weight's bytes could not be read for its upload (a file read lazily).
    #[error("{0}")]
    ReadWeights(FormatError),
}

/// Errors from choosing and applying quantizers: scheme names, recipes, tensors a scheme cannot
/// represent. Each names the input that was wrong.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum QuantError {
    #[error("bad scheme {input:?}: {message}")]
    BadScheme { input: String, message: String },

    #[error("{file}: bad recipe: {message}")]
    BadRecipe { file: String, message: String },

    #[error("scheme {scheme} cannot quantize tensor {tensor:?} ({rows}×{cols}): {reason}")]
    Unsupported { scheme: String, tensor: String, rows: usize, cols: usize, reason: String },

    #[error("tensor {tensor:?} has a non-finite value ({value}) at element {index}")]
    NonFinite { tensor: String, index: usize, value: f32 },

    #[error("tensor {tensor:?} is not in the model")]
    MissingTensor { tensor: String },

    #[error(transparent)]
    Format(#[from] FormatError),
}

impl From<QuantError> for ModelError {
    fn from(e: QuantError) -> ModelError {
        ModelError::Quant(Box::new(e))
    }
}
