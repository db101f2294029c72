//! Reads a Keras topology (Keras 2 and Keras 3 JSON) into layer calls in run order.
//!
//! A layer may be called more than once (shared layers); each call is one inbound node.
//! Keras 2 writes inbound nodes as `[[layer, node, tensor, kwargs], ...]`; Keras 3 as
//! `{"args": [keras tensors, possibly nested], "kwargs": {}}` with `keras_history`.

use crate::Error;
use serde_json::Value as Json;
use std::collections::HashMap;

/// A tensor made by a layer call: (layer name, call index, output index).
pub type TensorRef = (String, usize, usize);

pub struct Layer {
    pub class: String,
    pub name: String,
    pub config: Json,
}

pub struct Call {
    pub layer: usize,
    pub node: usize,
    pub inputs: Vec<TensorRef>,
}

pub struct Topology {
    pub layers: Vec<Layer>,
    /// Calls in an order where every input is made before it is read.
    pub calls: Vec<Call>,
    pub inputs: Vec<TensorRef>,
    pub outputs: Vec<TensorRef>,
}

/// Finds the model config inside `modelTopology` (`model_config` in TF.js files, or the config itself).
pub fn parse(topology: &Json) -> Result<Topology, Error> {
    let model = topology.get("model_config").unwrap_or(topology);
    let class = model.get("class_name").and_then(Json::as_str).unwrap_or("");
    let config = model.get("config").ok_or_else(|| Error::Json("modelTopology has no model config ('config')".into()))?;
    let layer_list = match config {
        Json::Array(l) => l,
        _ => config.get("layers").and_then(Json::as_array).ok_or_else(|| Error::Json("the model config lists no 'layers'".into()))?,
    };
    let mut layers = Vec::with_capacity(layer_list.len());
    for (i, l) in layer_list.iter().enumerate() {
        let class = l.get("class_name").and_then(Json::as_str).ok_or_else(|| Error::Json(format!("layer {i} has no class_name")))?;
        let lconfig = l.get("config").cloned().unwrap_or(Json::Null);
        let name = l.get("name").or_else(|| lconfig.get("name")).and_then(Json::as_str).map(str::to_string);
        layers.push(Layer { class: class.to_string(), name: name.unwrap_or_else(|| format!("layer_{i}")), config: lconfig });
    }
    match class {
        "Sequential" => sequential(layers, layer_list),
        "Functional" | "Model" => functional(layers, layer_list, config),
        other => Err(Error::Json(format!("model class '{other}' is neither Sequential nor Functional/Model"))),
    }
}

/// A Sequential model: each layer reads the previous one. A first layer without an
/// InputLayer declares the input shape itself; the input is then a synthetic layer.
fn sequential(mut layers: Vec<Layer>, _raw: &[Json]) -> Result<Topology, Error> {
    if layers.is_empty() {
        return Err(Error::Json("the Sequential model has no layers".into()));
    }
    if layers[0].class != "InputLayer" {
        let first = &layers[0].config;
        let shape = first.get("batch_input_shape").or_else(|| first.get("batch_shape")).cloned().ok_or_else(|| {
            Error::Json(format!("the first layer '{}' declares no batch_input_shape (and there is no InputLayer)", layers[0].name))
        })?;
        let name = format!("{}_input", layers[0].name);
        layers.insert(0, Layer { class: "InputLayer".into(), name, config: serde_json::json!({ "batch_input_shape": shape }) });
    }
    let calls = (1..layers.len()).map(|i| Call { layer: i, node: 0, inputs: vec![(layers[i - 1].name.clone(), 0, 0)] }).collect();
    let inputs = vec![(layers[0].name.clone(), 0, 0)];
    let outputs = vec![(layers[layers.len() - 1].name.clone(), 0, 0)];
    Ok(Topology { layers, calls, inputs, outputs })
}

fn functional(layers: Vec<Layer>, raw: &[Json], config: &Json) -> Result<Topology, Error> {
    let mut index = HashMap::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        if index.insert(l.name.clone(), i).is_some() {
            return Err(Error::Json(format!("two layers are named '{}'", l.name)));
        }
    }
    let mut calls = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let nodes = l.get("inbound_nodes").and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for (node, n) in nodes.iter().enumerate() {
            let mut inputs = Vec::new();
            collect_refs(n, &mut inputs, 0)?;
            for (src, _, _) in &inputs {
                if !index.contains_key(src) {
                    return Err(Error::Json(format!("layer '{}' reads from '{src}', which is not a layer of the model", layers[i].name)));
                }
            }
            calls.push(Call { layer: i, node, inputs });
        }
    }
    let inputs = tensor_refs(config.get("input_layers"), "input_layers")?;
    let outputs = tensor_refs(config.get("output_layers"), "output_layers")?;
    for (name, _, _) in inputs.iter().chain(&outputs) {
        if !index.contains_key(name) {
            return Err(Error::Json(format!("the model's inputs or outputs name '{name}', which is not a layer")));
        }
    }
    let calls = run_order(calls, &layers)?;
    Ok(Topology { layers, calls, inputs, outputs })
}

/// The tensors an inbound node reads, in order, in either Keras dialect.
fn collect_refs(n: &Json, out: &mut Vec<TensorRef>, depth: usize) -> Result<(), Error> {
    if depth > 16 {
        return Err(Error::Json("inbound nodes are nested too deeply".into()));
    }
    match n {
        // Keras 3: a keras tensor.
        Json::Object(o) if o.get("class_name").and_then(Json::as_str) == Some("__keras_tensor__") => {
            let h = o
                .get("config")
                .and_then(|c| c.get("keras_history"))
                .ok_or_else(|| Error::Json("a keras tensor without keras_history".into()))?;
            out.push(ref_of(h)?);
        }
        Json::Object(o) => {
            if let Some(args) = o.get("args") {
                collect_refs(args, out, depth + 1)?;
            }
        }
        // Keras 2: ["layer", node, tensor, {kwargs}].
        Json::Array(a) if a.first().is_some_and(Json::is_string) => out.push(ref_of(n)?),
        Json::Array(a) => {
            for item in a {
                collect_refs(item, out, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn ref_of(h: &Json) -> Result<TensorRef, Error> {
    let a = h.as_array().filter(|a| a.len() >= 3).ok_or_else(|| Error::Json(format!("bad tensor reference {h}")))?;
    let name = a[0].as_str().ok_or_else(|| Error::Json(format!("bad tensor reference {h}")))?;
    let idx =
        |v: &Json| v.as_u64().filter(|&n| n < 1 << 20).map(|n| n as usize).ok_or_else(|| Error::Json(format!("bad tensor reference {h}")));
    Ok((name.to_string(), idx(&a[1])?, idx(&a[2])?))
}

/// `input_layers` / `output_layers`: a list of references, or (Keras 3, one tensor) a single one.
fn tensor_refs(v: Option<&Json>, what: &str) -> Result<Vec<TensorRef>, Error> {
    let v = v.ok_or_else(|| Error::Json(format!("the model config has no '{what}'")))?;
    match v.as_array() {
        Some(a) if a.first().is_some_and(Json::is_string) => Ok(vec![ref_of(v)?]),
        Some(a) => a.iter().map(ref_of).collect(),
        None => Err(Error::Json(format!("'{what}' is not a list"))),
    }
}

/// Orders calls so each runs after the calls it reads (Kahn's algorithm); a cycle is an error.
fn run_order(calls: Vec<Call>, layers: &[Layer]) -> Result<Vec<Call>, Error> {
    let key: HashMap<(usize, usize), usize> = calls.iter().enumerate().map(|(i, c)| ((c.layer, c.node), i)).collect();
    let index: HashMap<&str, usize> = layers.iter().enumerate().map(|(i, l)| (l.name.as_str(), i)).collect();
    let mut reads = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        for (src, node, _) in &c.inputs {
            // Input layers have no call: their tensors exist from the start.
            if let Some(&p) = index.get(src.as_str()).and_then(|l| key.get(&(*l, *node))) {
                reads.push((i, p));
            }
        }
    }
    let order = cairn_core::run_order(calls.len(), reads).map_err(|stuck| {
        Error::Json(format!("the layers' inbound nodes form a cycle (through layer '{}')", layers[calls[stuck].layer].name))
    })?;
    let mut slots: Vec<Option<Call>> = calls.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}
