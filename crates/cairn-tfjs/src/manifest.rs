//! The `model.json` envelope and its weights manifest, as serde types.
//!
//! The topology stays a `serde_json::Value` here: layers models and graph models
//! describe it so differently that each importer reads its own part.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelJson {
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub generated_by: Option<String>,
    #[serde(default)]
    pub converted_by: Option<String>,
    pub model_topology: serde_json::Value,
    #[serde(default)]
    pub weights_manifest: Vec<WeightGroup>,
    /// Graph models: named inputs and outputs (`signature.inputs` / `.outputs`).
    #[serde(default)]
    pub signature: Option<serde_json::Value>,
    /// Where some converters put the signature instead.
    #[serde(default)]
    pub user_defined_metadata: Option<serde_json::Value>,
}

/// One group of weights, stored back to back across the group's shard files.
#[derive(Debug, Deserialize)]
pub struct WeightGroup {
    pub paths: Vec<String>,
    pub weights: Vec<WeightEntry>,
}

#[derive(Debug, Deserialize)]
pub struct WeightEntry {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: String,
    #[serde(default)]
    pub quantization: Option<Quantization>,
}

/// TF.js weight quantization: `value = q * scale + min` for uint8/uint16; float16 is a plain cast.
#[derive(Debug, Deserialize)]
pub struct Quantization {
    pub dtype: String,
    #[serde(default)]
    pub scale: Option<f32>,
    #[serde(default)]
    pub min: Option<f32>,
    #[serde(default)]
    pub original_dtype: Option<String>,
}

/// Parses model.json, naming what is wrong when it is not one.
pub fn parse(bytes: &[u8]) -> Result<ModelJson, crate::Error> {
    if bytes.is_empty() {
        return Err(crate::Error::Json("the file is empty".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| crate::Error::Json(e.to_string()))
}
