//! What the `tokenizers` crate assumes of a tokenizer.json but does not check when it reads
//! one (its builders check it; its deserializers do not): each of these made it panic as it
//! read the file or on the first text, which in the browser's wasm ends the worker. Found by
//! the fuzz target `load_tokenizer` (fuzz/bodies.rs); a new panic it finds gets its check
//! here, with the input in fuzz/regressions/load_tokenizer/.

use serde_json::Value;

/// Checks the parsed file; the error says what is wrong, in the file's terms.
pub(crate) fn check(file: &Value) -> Result<(), String> {
    if let Some(post) = file.get("post_processor") {
        check_post_processor(post)?;
    }
    if let Some(normalizer) = file.get("normalizer") {
        check_normalizer(normalizer)?;
    }
    if let Some(pre_tokenizer) = file.get("pre_tokenizer") {
        check_pre_tokenizer(pre_tokenizer)?;
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

/// A normalizer, or each of a `Sequence` of them: a `Replace` whose pattern can match nothing
/// and a `Prepend` of nothing (the crate's alignment bookkeeping indexes past its end on an
/// empty match or insertion), and a `Precompiled` character map (SentencePiece's, base64),
/// which the crate reads through `.expect()`: read here first, the same way.
fn check_normalizer(normalizer: &Value) -> Result<(), String> {
    if let (Some(pattern), Some(_)) = (normalizer.get("pattern"), normalizer.get("content")) {
        check_replace_pattern(pattern)?;
    }
    if normalizer.get("prepend").and_then(Value::as_str) == Some("") {
        return Err("normalizer: a Prepend of the empty string (nothing to prepend)".into());
    }
    if normalizer.get("type").and_then(Value::as_str) == Some("Precompiled") {
        serde_json::from_value::<tokenizers::normalizers::Precompiled>(normalizer.clone())
            .map_err(|e| format!("normalizer: the Precompiled character map cannot be read ({e})"))?;
    }
    normalizer.get("normalizers").and_then(Value::as_array).into_iter().flatten().try_for_each(check_normalizer)
}

/// A `Replace` normalizer's pattern must not match the empty string: by the regex's minimum
/// length where `regex-syntax` reads it; a pattern only `fancy-regex` reads (look-arounds,
/// back-references) is tried on sample texts for a zero-length match.
fn check_replace_pattern(pattern: &Value) -> Result<(), String> {
    let empty = |what: &str| Err(format!("normalizer: a Replace whose pattern {what} can match the empty string (nothing to replace)"));
    if let Some(s) = pattern.get("String").and_then(Value::as_str) {
        return if s.is_empty() { empty("\"\"") } else { Ok(()) };
    }
    let Some(re) = pattern.get("Regex").and_then(Value::as_str) else { return Ok(()) };
    match regex_syntax::parse(re) {
        Ok(hir) if hir.properties().minimum_len() == Some(0) => empty(&format!("{re:?}")),
        Ok(_) => Ok(()),
        Err(_) => {
            // Not one regex-syntax reads; if fancy-regex cannot either, the crate refuses it.
            let Ok(fancy) = fancy_regex::Regex::new(re) else { return Ok(()) };
            let samples = ["", "a", "lyon loon  ly\u{e9} 12, \u{4e2d} \u{1f355}!", re];
            let zero_width = samples.iter().any(|s| fancy.find_iter(s).any(|m| m.is_ok_and(|m| m.start() == m.end())));
            if zero_width {
                empty(&format!("{re:?}"))
            } else {
                Ok(())
            }
        }
    }
}

/// A pre-tokenizer, or each of a `Sequence` of them: `FixedLength` cuts the text into
/// chunks of `length` characters, and a length of 0 panicked (`chunks(0)`). By its field,
/// as an untyped pre-tokenizer is read by its fields.
fn check_pre_tokenizer(pre_tokenizer: &Value) -> Result<(), String> {
    if pre_tokenizer.get("length").and_then(Value::as_u64) == Some(0) {
        return Err("pre_tokenizer: a FixedLength length of 0 (pieces of at least one character)".into());
    }
    pre_tokenizer.get("pretokenizers").and_then(Value::as_array).into_iter().flatten().try_for_each(check_pre_tokenizer)
}
