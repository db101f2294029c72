//! The table from (domain, op type) to builder. Each operator family module
//! registers its ops in its `register` function; `ops::register_all` calls them.

use crate::{Attrs, Error, Op, OpBuilder, OpContext, Result};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The standard ONNX domain. ONNX writes it as "" or "ai.onnx".
pub const ONNX_DOMAIN: &str = "";

/// Lowest and highest default-domain opsets the importer accepts. Opsets above 21
/// are accepted because for the ops Cairn implements they only widened type lists
/// (bfloat16, float8, int4), which Cairn rejects by dtype, not by opset. Opsets below
/// [`PER_OP_BELOW_OPSET`] are accepted per operator (docs/adr/0027-opsets-below-7-and-image-decoder.md).
pub const MIN_OPSET: i64 = 1;
pub const MAX_OPSET: i64 = 28;
/// Cairn implements every default-domain operator as defined from opset 7 on. A model
/// importing an older opset loads when each of its operators still had that definition
/// (the importer checks each node against the onnx schemas' `since_version`).
pub const PER_OP_BELOW_OPSET: i64 = 7;

#[derive(Default)]
pub struct Registry {
    builders: BTreeMap<(String, String), OpBuilder>,
}

fn normalize_domain(domain: &str) -> &str {
    if domain == "ai.onnx" {
        ONNX_DOMAIN
    } else {
        domain
    }
}

impl Registry {
    /// Registers an op of the default ONNX domain.
    pub fn register(&mut self, op_type: &str, builder: OpBuilder) {
        self.register_in(ONNX_DOMAIN, op_type, builder);
    }

    pub fn register_in(&mut self, domain: &str, op_type: &str, builder: OpBuilder) {
        self.builders.insert((normalize_domain(domain).to_string(), op_type.to_string()), builder);
    }

    /// The registry with every op Cairn implements.
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            let mut r = Registry::default();
            crate::ops::register_all(&mut r);
            r
        })
    }

    pub fn supports(&self, domain: &str, op_type: &str) -> bool {
        self.builders.contains_key(&(normalize_domain(domain).to_string(), op_type.to_string()))
    }

    /// (domain, op_type) of every registered op, sorted; `SUPPORTED_OPS.md` is generated from this.
    pub fn op_types(&self) -> Vec<(String, String)> {
        self.builders.keys().cloned().collect()
    }

    /// Builds the op for one node. Errors name the node, the op and the opset.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        &self,
        node: &str,
        domain: &str,
        op_type: &str,
        opset: i64,
        attrs: &Attrs,
        n_inputs: usize,
        n_outputs: usize,
    ) -> Result<Box<dyn Op>> {
        let unsupported_op = || Error::UnsupportedOp { node: node.to_string(), op_type: qualified(domain, op_type), opset };
        let builder = self.builders.get(&(normalize_domain(domain).to_string(), op_type.to_string())).ok_or_else(unsupported_op)?;
        let ctx = OpContext::new(op_type, opset, attrs, n_inputs, n_outputs);
        let op = builder(&ctx).map_err(|e| match e {
            Error::UnsupportedAttr { op_type, opset, attr, detail, .. } => {
                Error::UnsupportedAttr { node: node.to_string(), op_type, opset, attr, detail }
            }
            e => e.at_node(node, op_type),
        })?;
        if let Some(attr) = ctx.unread().into_iter().next() {
            return Err(Error::UnsupportedAttr {
                node: node.to_string(),
                op_type: op_type.to_string(),
                opset,
                attr,
                detail: "Cairn does not implement this attribute".to_string(),
            });
        }
        Ok(op)
    }
}

fn qualified(domain: &str, op_type: &str) -> String {
    match normalize_domain(domain) {
        ONNX_DOMAIN => op_type.to_string(),
        d => format!("{d}.{op_type}"),
    }
}
