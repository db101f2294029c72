//! Feeds arbitrary bytes to the bundle loader. The input is a manifest and one
//! shard, split at a 2-byte length prefix. So that the fuzzer gets past the sha256
//! check into the safetensors parser and weight placement, the target rewrites the
//! manifest's first shard entry to name the shard bytes it was given: what a
//! hostile server could do. Any panic, overflow or OOM is a bug.
#![no_main]

use cairn_bundle::{Loader, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let len = (u16::from_le_bytes(*len) as usize).min(rest.len());
    let (manifest_bytes, shard) = rest.split_at(len);
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(manifest_bytes) else {
        let _ = Manifest::parse(manifest_bytes);
        return;
    };
    if let Some(first) = value.get_mut("shards").and_then(|s| s.get_mut(0)).and_then(|s| s.as_object_mut()) {
        let sha = cairn_bundle::sha256_hex(shard);
        first.insert("path".into(), format!("shards/{sha}.safetensors").into());
        first.insert("sha256".into(), sha.into());
        first.insert("bytes".into(), (shard.len() as u64).into());
    }
    let Ok(manifest) = Manifest::parse(value.to_string().as_bytes()) else { return };
    let Ok(mut loader) = Loader::new(manifest, 64 << 20) else { return };
    if loader.accept_shard(0, shard).is_ok() {
        if let Ok(graph) = loader.graph() {
            let _ = cairn_core::passes::prepare_for_inference(graph);
        }
    }
});
