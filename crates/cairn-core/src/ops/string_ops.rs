//! The string operators of the default domain: StringConcat, StringSplit, StringNormalizer,
//! RegexFullMatch (feature `regex`), and the constant node that holds a string initializer.
//! They run on the eager interpreter's [`StringTensor`]s (docs/adr/0031-string-tensors.md).

use super::broadcast::{broadcast_shapes, broadcast_strides, for_each_offset};
use super::control::eager_only;
use crate::eager::EvalContext;
use crate::graph::Node;
use crate::{Attrs, Error, Fact, Op, Registry, Result, StringTensor, Tensor, TensorData, TensorMut, TensorRef, Value};
use std::sync::Arc;

/// The planned-path stubs of an eager-only op that takes strings in `eval`.
macro_rules! string_op {
    ($name:literal) => {
        eager_only!($name);
        fn takes_strings(&self) -> bool {
            true
        }
    };
}

pub fn register(r: &mut Registry) {
    r.register("StringConcat", |_| Ok(Box::new(StringConcat)));
    r.register("StringSplit", |ctx| {
        let delimiter = ctx.string("delimiter", "")?;
        let maxsplit = match ctx.int_opt("maxsplit")? {
            None => None,
            Some(m) => Some(
                usize::try_from(m)
                    .map_err(|_| Error::InvalidAttr { attr: "maxsplit".into(), detail: format!("{m} must not be negative") })?,
            ),
        };
        Ok(Box::new(StringSplit { delimiter, maxsplit }))
    });
    r.register("StringNormalizer", |ctx| {
        let case = match ctx.string("case_change_action", "NONE")?.as_str() {
            "NONE" => Case::None,
            "LOWER" => Case::Lower,
            "UPPER" => Case::Upper,
            other => {
                return Err(Error::InvalidAttr {
                    attr: "case_change_action".into(),
                    detail: format!("'{other}' (expected NONE, LOWER or UPPER)"),
                })
            }
        };
        // Case rules are Unicode's default (locale-independent) mapping: what "en_US", the
        // default, does; another locale's special rules (Turkish dotted i) are refused.
        let locale = ctx.string("locale", "en_US")?;
        if !locale.is_empty() && !locale.starts_with("en") && locale != "C" {
            return Err(ctx.unsupported(
                "locale",
                format!("'{locale}': Cairn applies Unicode's default case mapping (en_US); other locales' rules are not implemented"),
            ));
        }
        let case_sensitive = ctx.int("is_case_sensitive", 0)? != 0;
        let mut stopwords = ctx.strings_opt("stopwords")?.unwrap_or_default();
        if !case_sensitive {
            stopwords.iter_mut().for_each(|s| *s = s.to_lowercase());
        }
        Ok(Box::new(StringNormalizer { case, case_sensitive, stopwords }))
    });
    #[cfg(feature = "regex")]
    r.register("RegexFullMatch", |ctx| {
        let pattern = ctx.string_req("pattern")?;
        // Anchored at both ends of the text: a full match, as RE2::FullMatch.
        let re = regex::RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
            .size_limit(1 << 22)
            .build()
            .map_err(|e| Error::InvalidAttr { attr: "pattern".into(), detail: format!("'{pattern}' does not compile: {e}") })?;
        Ok(Box::new(RegexFullMatch { re }))
    });
}

/// `Cast(to = STRING)`: numbers as text, floats in Rust's shortest round-trip form
/// ("0.1", "1e20" as "100000000000000000000", "NaN", "inf"), bools as "1"/"0"
/// (onnxruntime prints floats with its own precision; docs/adr/0031).
pub(super) fn cast_to_string() -> Box<dyn Op> {
    Box::new(CastToString)
}

/// `Cast(to = number)` of a string tensor: each string parsed as a number (surrounding
/// whitespace ignored; "inf", "nan" accepted), then converted as a numeric Cast would.
pub(super) fn parse_strings(s: &StringTensor, to: crate::DType) -> Result<Tensor> {
    let bad = |i: usize, v: &str| Error::Input(format!("Cast: string {i} ({v:?}) is not a number"));
    let trimmed = s.data().iter().map(|v| v.trim());
    let data = if to.is_float() {
        TensorData::F64(trimmed.enumerate().map(|(i, v)| v.parse::<f64>().map_err(|_| bad(i, v))).collect::<Result<_>>()?)
    } else {
        TensorData::I64(
            trimmed
                .enumerate()
                .map(|(i, v)| v.parse::<i64>().or_else(|_| v.parse::<f64>().map(|f| f as i64)).map_err(|_| bad(i, v)))
                .collect::<Result<_>>()?,
        )
    };
    Tensor::new(s.shape().to_vec(), data)?.cast(to)
}

#[derive(Debug)]
struct CastToString;

impl Op for CastToString {
    string_op!("Cast");
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let x = match inputs.first().and_then(|v| v.as_ref()) {
            Some(Value::Strings(s)) => return Ok(vec![Value::Strings(s.clone())]),
            Some(v) => v.as_tensor("Cast")?,
            None => return Err(Error::shape("Cast", "input 0 is required")),
        };
        room(cx, x.len(), x.len().saturating_mul(24))?;
        let v = x.view();
        // Shortest round trip in the tensor's own width: f32 0.1 prints "0.1".
        let text: Vec<String> = if x.dtype() == crate::DType::F64 {
            v.to_f64_vec().iter().map(|f| if f.is_nan() { "NaN".to_string() } else { f.to_string() }).collect()
        } else if x.dtype().is_float() {
            v.to_f32_vec().iter().map(|f| if f.is_nan() { "NaN".to_string() } else { f.to_string() }).collect()
        } else {
            v.to_i64_vec()?.iter().map(|i| i.to_string()).collect()
        };
        Ok(vec![string_value(x.shape().to_vec(), text)?])
    }
}

/// The node that yields a string initializer or `Constant` (numeric ones stay initializers).
pub fn string_constant_node(name: &str, output: &str, value: StringTensor) -> Node {
    Node {
        name: name.to_string(),
        domain: String::new(),
        op_type: "Constant".into(),
        attrs: Attrs::new(),
        inputs: vec![],
        outputs: vec![output.to_string()],
        op: Arc::new(StringConstant(Arc::new(value))),
    }
}

fn strings<'v>(op: &str, inputs: &'v [Option<Value>], i: usize) -> Result<&'v StringTensor> {
    match inputs.get(i).and_then(|v| v.as_ref()) {
        Some(Value::Strings(s)) => Ok(s),
        Some(other) => Err(Error::shape(op, format!("input {i} must be a string tensor, got {}", other.describe()))),
        None => Err(Error::shape(op, format!("input {i} is required"))),
    }
}

fn string_value(shape: Vec<usize>, data: Vec<String>) -> Result<Value> {
    Ok(Value::Strings(Arc::new(StringTensor::new(shape, data)?)))
}

/// Checks room for `n` new strings of about `bytes` text before building them.
fn room(cx: &EvalContext, n: usize, bytes: usize) -> Result<()> {
    cx.check_room(n.saturating_mul(std::mem::size_of::<String>()).saturating_add(bytes), "the string outputs")
}

#[derive(Debug)]
struct StringConstant(Arc<StringTensor>);

impl Op for StringConstant {
    string_op!("Constant");
    fn built_by_pass(&self) -> bool {
        true // Cairn's export writes numeric tensors only
    }
    fn eval(&self, _inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        Ok(vec![Value::Strings(self.0.clone())])
    }
}

/// StringConcat (opset 20): element-wise `x + y` with numpy broadcasting.
#[derive(Debug)]
struct StringConcat;

impl Op for StringConcat {
    string_op!("StringConcat");
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let (x, y) = (strings("StringConcat", inputs, 0)?, strings("StringConcat", inputs, 1)?);
        let shape = broadcast_shapes(&[x.shape(), y.shape()], "StringConcat")?;
        let n = crate::checked_numel(&shape)?;
        let longest = |s: &StringTensor| s.data().iter().map(String::len).max().unwrap_or(0);
        room(cx, n, n.saturating_mul(longest(x) + longest(y)))?;
        let (sx, sy) = (broadcast_strides(x.shape(), &shape), broadcast_strides(y.shape(), &shape));
        let mut out = Vec::with_capacity(n);
        for_each_offset(&shape, [&sx, &sy], |_, [i, j]| out.push(format!("{}{}", x.data()[i], y.data()[j])));
        Ok(vec![string_value(shape, out)?])
    }
}

/// StringSplit (opset 20): Y holds each string's pieces padded with "" to the most pieces
/// of any element; Z the number of pieces. No delimiter (or "") splits on runs of
/// whitespace and drops empty pieces, as Python's `str.split()`; `maxsplit` caps the splits.
#[derive(Debug)]
struct StringSplit {
    delimiter: String,
    maxsplit: Option<usize>,
}

impl StringSplit {
    fn split<'s>(&self, s: &'s str) -> Vec<&'s str> {
        let max = self.maxsplit.map_or(usize::MAX, |m| m.saturating_add(1));
        if !self.delimiter.is_empty() {
            return s.splitn(max, self.delimiter.as_str()).collect();
        }
        let mut pieces = Vec::new();
        let mut rest = s.trim_start();
        while !rest.is_empty() {
            if pieces.len() + 1 == max {
                pieces.push(rest);
                break;
            }
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            pieces.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
        pieces
    }
}

impl Op for StringSplit {
    string_op!("StringSplit");
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let x = strings("StringSplit", inputs, 0)?;
        let pieces: Vec<Vec<&str>> = x.data().iter().map(|s| self.split(s)).collect();
        let width = pieces.iter().map(Vec::len).max().unwrap_or(0);
        let n = x.data().len().saturating_mul(width);
        room(cx, n, x.data().iter().map(String::len).sum())?;
        let mut y = Vec::with_capacity(n);
        for p in &pieces {
            y.extend(p.iter().map(|s| s.to_string()));
            y.extend(std::iter::repeat_n(String::new(), width - p.len()));
        }
        let mut shape = x.shape().to_vec();
        shape.push(width);
        let counts = pieces.iter().map(|p| p.len() as i64).collect();
        Ok(vec![string_value(shape, y)?, Value::tensor(Tensor::new(x.shape().to_vec(), TensorData::I64(counts))?)])
    }
}

#[derive(Debug, Clone, Copy)]
enum Case {
    None,
    Lower,
    Upper,
}

/// StringNormalizer (opset 10): drops stopwords (compared lower-cased unless
/// `is_case_sensitive`), then changes case. Input [C] or [1, C]; when every string is
/// dropped the output is one "" ([1] or [1, 1]), as onnxruntime returns.
#[derive(Debug)]
struct StringNormalizer {
    case: Case,
    case_sensitive: bool,
    stopwords: Vec<String>,
}

impl Op for StringNormalizer {
    string_op!("StringNormalizer");
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let x = strings("StringNormalizer", inputs, 0)?;
        let two_d = match x.shape() {
            [_] => false,
            [1, _] => true,
            other => return Err(Error::shape("StringNormalizer", format!("input must be [C] or [1, C], got {other:?}"))),
        };
        room(cx, x.data().len(), x.data().iter().map(|s| s.len() * 3).sum())?;
        let stop = |s: &String| {
            if self.case_sensitive {
                self.stopwords.contains(s)
            } else {
                self.stopwords.contains(&s.to_lowercase())
            }
        };
        let mut kept: Vec<String> = x
            .data()
            .iter()
            .filter(|s| !stop(s))
            .map(|s| match self.case {
                Case::None => s.clone(),
                Case::Lower => s.to_lowercase(),
                Case::Upper => s.to_uppercase(),
            })
            .collect();
        if kept.is_empty() {
            kept.push(String::new());
        }
        let shape = if two_d { vec![1, kept.len()] } else { vec![kept.len()] };
        Ok(vec![string_value(shape, kept)?])
    }
}

/// RegexFullMatch (opset 20): true where the whole string matches `pattern`. Patterns are
/// Rust `regex` syntax, which is RE2's (onnxruntime's engine) except that `\w`, `\d`, `\s`
/// and `\b` are Unicode-aware here and ASCII in RE2, and a few RE2 extensions (`\C`,
/// `(?P=name)`) are missing (docs/adr/0031). Matching time is linear in the text, as RE2's.
#[cfg(feature = "regex")]
#[derive(Debug)]
struct RegexFullMatch {
    re: regex::Regex,
}

#[cfg(feature = "regex")]
impl Op for RegexFullMatch {
    string_op!("RegexFullMatch");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        let x = strings("RegexFullMatch", inputs, 0)?;
        let hits = x.data().iter().map(|s| u8::from(self.re.is_match(s))).collect();
        Ok(vec![Value::tensor(Tensor::new(x.shape().to_vec(), TensorData::Bool(hits))?)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eager::EvalBudget;
    use crate::plan::PlanLimits;
    use crate::Attr;

    fn s(shape: Vec<usize>, v: &[&str]) -> Value {
        string_value(shape, v.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    fn eval(op: &str, attrs: &[(&str, Attr)], inputs: &[Value], n_out: usize) -> Result<Vec<Value>> {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let op = Registry::global().build("n", "", op, 20, &attrs, inputs.len(), n_out)?;
        let (limits, budget) = (PlanLimits::default(), EvalBudget::default());
        op.eval(&inputs.iter().cloned().map(Some).collect::<Vec<_>>(), &budget.context(&limits))
    }

    #[test]
    fn concat_broadcasts() {
        let y = eval("StringConcat", &[], &[s(vec![2], &["a", "é"]), s(vec![], &["!"])], 1).unwrap();
        assert_eq!(y[0], s(vec![2], &["a!", "é!"]));
    }

    #[test]
    fn split_like_python() {
        let y = eval("StringSplit", &[("maxsplit", Attr::Int(1))], &[s(vec![2], &["  a b  c ", "x"])], 2).unwrap();
        assert_eq!(y[0], s(vec![2, 2], &["a", "b  c ", "x", ""]));
        let y = eval("StringSplit", &[("delimiter", Attr::Str("-".into()))], &[s(vec![1], &["a--b"])], 2).unwrap();
        assert_eq!(y[0], s(vec![1, 3], &["a", "", "b"]));
        assert_eq!(y[1], Value::tensor(Tensor::from_i64(vec![1], vec![3]).unwrap()));
    }

    #[test]
    fn normalizer_drops_stopwords_then_changes_case() {
        let attrs = [("case_change_action", Attr::Str("UPPER".into())), ("stopwords", Attr::Strs(vec!["monday".into()]))];
        let y = eval("StringNormalizer", &attrs, &[s(vec![1, 3], &["Monday", "tue", "monday"])], 1).unwrap();
        assert_eq!(y[0], s(vec![1, 1], &["TUE"]));
        let y = eval("StringNormalizer", &attrs, &[s(vec![1], &["MONDAY"])], 1).unwrap();
        assert_eq!(y[0], s(vec![1], &[""]));
        let bad = [("locale", Attr::Str("tr_TR".into()))];
        assert!(eval("StringNormalizer", &bad, &[s(vec![1], &["i"])], 1).unwrap_err().to_string().contains("locale"));
    }

    #[test]
    fn cast_parses_and_prints_numbers() {
        let y = eval("Cast", &[("to", Attr::Int(1))], &[s(vec![3], &[" 1.5", "-inf", "2e3"])], 1).unwrap();
        assert_eq!(y[0], Value::tensor(Tensor::from_f32(vec![3], vec![1.5, f32::NEG_INFINITY, 2000.0]).unwrap()));
        let e = eval("Cast", &[("to", Attr::Int(7))], &[s(vec![1], &["x1"])], 1).unwrap_err().to_string();
        assert!(e.contains("not a number"), "{e}");
        let back = eval("Cast", &[("to", Attr::Int(8))], &[Value::tensor(Tensor::from_f32(vec![2], vec![0.1, 3.0]).unwrap())], 1).unwrap();
        assert_eq!(back[0], s(vec![2], &["0.1", "3"]));
    }

    #[cfg(feature = "regex")]
    #[test]
    fn regex_matches_whole_strings_and_bad_patterns_are_errors() {
        let y = eval("RegexFullMatch", &[("pattern", Attr::Str("a+|b".into()))], &[s(vec![3], &["aaa", "ab", "b"])], 1).unwrap();
        assert_eq!(y[0], Value::tensor(Tensor::new(vec![3], TensorData::Bool(vec![1, 0, 1])).unwrap()));
        let e = eval("RegexFullMatch", &[("pattern", Attr::Str("(a".into()))], &[], 1).unwrap_err().to_string();
        assert!(e.contains("does not compile"), "{e}");
    }
}
