//! The GraphDef of a TF.js graph model, as the converter writes it in JSON: nodes with
//! `op`, `input` (`name`, `name:1`, `^control`) and typed attributes (`{"i": "3"}`,
//! `{"s": base64}`, `{"list": {...}}`, ...).

use crate::Error;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::HashMap;

#[derive(Debug, Deserialize)]
pub struct GraphDef {
    #[serde(default)]
    pub node: Vec<NodeDef>,
    #[serde(default)]
    pub library: Option<Json>,
}

#[derive(Debug, Deserialize)]
pub struct NodeDef {
    pub name: String,
    pub op: String,
    #[serde(default)]
    pub input: Vec<String>,
    #[serde(default)]
    pub attr: HashMap<String, Json>,
}

impl NodeDef {
    fn err(&self, detail: impl Into<String>) -> Error {
        Error::node(&self.name, &self.op, detail)
    }

    /// Data inputs (control inputs `^x` dropped), as value names (`x:0` is `x`).
    pub fn data_inputs(&self) -> Vec<String> {
        self.input.iter().filter(|i| !i.starts_with('^')).map(|i| i.strip_suffix(":0").unwrap_or(i).to_string()).collect()
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, Error> {
        match self.attr.get(key).and_then(|a| a.get("s")).and_then(Json::as_str) {
            None => Ok(None),
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|b| Some(String::from_utf8_lossy(&b).into_owned()))
                .map_err(|e| self.err(format!("attribute '{key}' is not base64: {e}"))),
        }
    }

    pub fn strings(&self, key: &str) -> Result<Vec<String>, Error> {
        let list = self.attr.get(key).and_then(|a| a.get("list")).and_then(|l| l.get("s")).and_then(Json::as_array);
        list.map(|l| l.as_slice())
            .unwrap_or(&[])
            .iter()
            .map(|s| {
                let b = base64::engine::general_purpose::STANDARD
                    .decode(s.as_str().unwrap_or(""))
                    .map_err(|e| self.err(format!("attribute '{key}' is not base64: {e}")))?;
                Ok(String::from_utf8_lossy(&b).into_owned())
            })
            .collect()
    }

    pub fn float(&self, key: &str) -> Option<f32> {
        self.attr.get(key).and_then(|a| a.get("f")).and_then(Json::as_f64).map(|v| v as f32)
    }

    pub fn bool(&self, key: &str) -> bool {
        self.attr.get(key).and_then(|a| a.get("b")).and_then(Json::as_bool).unwrap_or(false)
    }

    pub fn ints(&self, key: &str) -> Result<Option<Vec<i64>>, Error> {
        let Some(list) = self.attr.get(key).and_then(|a| a.get("list")) else { return Ok(None) };
        let items = list.get("i").and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]);
        items
            .iter()
            .map(|v| as_i64(v).ok_or_else(|| self.err(format!("attribute '{key}' holds {v}, not an int"))))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// A 4-entry NHWC attribute (strides, ksize, dilations) as its two spatial entries.
    pub fn spatial(&self, key: &str, default: i64) -> Result<[i64; 2], Error> {
        match self.ints(key)? {
            None => Ok([default; 2]),
            Some(v) if v.len() == 4 && v[0] == 1 && v[3] == 1 && v[1..3].iter().all(|&s| (1..=1 << 16).contains(&s)) => Ok([v[1], v[2]]),
            Some(v) => Err(self.err(format!("'{key}' is {v:?}; expected [1, h, w, 1] with positive h and w"))),
        }
    }

    /// Declared dims of a `shape` attribute (-1 for unknown), `None` when the rank is unknown.
    pub fn shape(&self, key: &str) -> Result<Option<Vec<i64>>, Error> {
        let Some(s) = self.attr.get(key).and_then(|a| a.get("shape")) else { return Ok(None) };
        if s.get("unknownRank").and_then(Json::as_bool) == Some(true) {
            return Ok(None);
        }
        let dims = s.get("dim").and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]);
        if dims.len() > 8 {
            return Err(self.err(format!("a rank-{} shape is not supported", dims.len())));
        }
        dims.iter()
            .map(|d| {
                let n = d.get("size").map_or(Some(0), as_i64).ok_or_else(|| self.err(format!("bad dimension {d}")))?;
                if !(-1..=1 << 24).contains(&n) {
                    return Err(self.err(format!("dimension {n} is not a size")));
                }
                Ok(n)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// TF's JSON writes 64-bit ints as strings.
fn as_i64(v: &Json) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}
