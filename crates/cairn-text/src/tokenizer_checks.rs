//! What the `tokenizers` crate assumes of a tokenizer.json but does not check when it reads
//! one (its builders check it; its deserializers do not): each of these made it panic on
//! the first text, which in the browser's wasm ends the worker. Found by the fuzz target
//! `load_tokenizer` (fuzz/bodies.rs); a new panic it finds gets its check here, with the
//! input in fuzz/regressions/load_tokenizer/.

use serde_json::Value;

/// Checks the parsed file; the error says what is wrong, in the file's terms.
pub(crate) fn check(file: &Value) -> Result<(), String> {
    if let Some(post) = file.get("post_processor") {
        check_post_processor(post)?;
    }
    Ok(())
}

/// A post-processor, or each of a `Sequence` of them. By its fields, not its `type`: the
/// crate reads post-processors untagged (the first variant whose fields fit wins), so a
/// template with a misspelt type is still a template.
fn check_post_processor(post: &Value) -> Result<(), String> {
    if ["single", "pair", "special_tokens"].iter().any(|k| post.get(k).is_some()) {
        check_template(post)?;
    }
    post.get("processors").and_then(Value::as_array).into_iter().flatten().try_for_each(check_post_processor)
}

/// A `TemplateProcessing`: every special token its templates name is defined (the crate
/// indexes its map with the name), and `single` uses sequence A only (there is no B).
fn check_template(template: &Value) -> Result<(), String> {
    let defined = template.get("special_tokens").and_then(Value::as_object);
    for which in ["single", "pair"] {
        for piece in template.get(which).and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = piece.pointer("/SpecialToken/id").and_then(Value::as_str) {
                if !defined.is_some_and(|d| d.contains_key(id)) {
                    return Err(format!(
                        "post_processor: the {which} template names the special token {id:?}, which its special_tokens do not define"
                    ));
                }
            }
            if which == "single" && piece.pointer("/Sequence/id").and_then(Value::as_str) == Some("B") {
                return Err("post_processor: the single template uses sequence B (a single text is sequence A)".into());
            }
        }
    }
    Ok(())
}
