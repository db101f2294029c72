//! Live model updates: every `reload_interval` the server looks at each bundle's
//! manifest under `DIR/models`. A changed manifest with a new version is loaded and warmed
//! in the background while the old version keeps answering; then the new version
//! replaces it in one swap. Clients pinned to the old version (`Cairn-Model-Version`
//! header or `?version=`) keep being answered until `reload_grace` has passed.
//! A bundle that does not load yet (shards still being copied) is tried again on the next
//! look, and reported once per manifest.

use crate::models::{self, ModelSet, Retiring};
use crate::App;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Watches `app`'s model directory until the server drains.
pub async fn watch(app: Arc<App>, every: Duration) {
    // Manifests as last seen (bytes), so unchanged bundles cost one small read per look.
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    let mut reported: HashMap<String, Vec<u8>> = HashMap::new();
    for (name, path) in models::bundle_dirs(&app.root) {
        if let Ok(bytes) = std::fs::read(path.join(cairn_bundle::MANIFEST_FILE)) {
            seen.insert(name, bytes);
        }
    }
    loop {
        tokio::time::sleep(every).await;
        if app.is_draining() {
            return;
        }
        for (name, path) in models::bundle_dirs(&app.root) {
            let Ok(bytes) = std::fs::read(path.join(cairn_bundle::MANIFEST_FILE)) else { continue };
            if seen.get(&name) == Some(&bytes) {
                continue;
            }
            match update(&app, &name, path).await {
                Ok(()) => {
                    seen.insert(name.clone(), bytes);
                    reported.remove(&name);
                }
                Err(e) if reported.get(&name) != Some(&bytes) => {
                    tracing::warn!(model = %name, error = %e, "new bundle not loaded yet; will try again");
                    reported.insert(name, bytes);
                }
                Err(_) => {}
            }
        }
        app.prune_retired();
    }
}

/// Loads the bundle at `path` and, when its version is new, swaps it in.
async fn update(app: &Arc<App>, name: &str, path: PathBuf) -> Result<(), String> {
    let manifest = cairn_bundle::read_manifest(&path).map_err(|e| e.to_string())?;
    let old = app.models().current.get(name).cloned();
    if old.as_ref().is_some_and(|m| m.manifest.version == manifest.version) {
        return Ok(());
    }
    let started = Instant::now();
    let (a, n) = (app.clone(), name.to_string());
    let model = tokio::task::spawn_blocking(move || models::load(&path, &n, a.config.max_weight_bytes, &a.config.batch, &a.pool))
        .await
        .map_err(|e| e.to_string())??;
    if let Err(e) = models::warm(&model).await {
        tracing::warn!(model = %name, error = %e, "new version not warmed");
    }
    let model = Arc::new(model);
    let grace = app.config.reload_grace;
    app.swap_models(|set: &ModelSet| {
        let mut next = ModelSet { current: set.current.clone(), retiring: set.retiring.clone() };
        if let Some(old) = next.current.insert(name.to_string(), model.clone()) {
            next.retiring.push(Retiring { model: old, until: Instant::now() + grace });
        }
        next
    });
    tracing::info!(
        model = %name,
        from = old.as_ref().map(|m| m.manifest.version.as_str()),
        to = %model.manifest.version,
        load_ms = started.elapsed().as_secs_f64() * 1e3,
        grace_s = grace.as_secs_f64(),
        "model updated; the old version answers pinned clients until the grace period ends"
    );
    Ok(())
}
