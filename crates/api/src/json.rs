//! JSON exactly as Synapse writes it, so responses compare byte for byte.
//!
//! Synapse answers with two encoders: successful admin and client responses
//! use its compact encoder (insertion order, non-ASCII escaped as `\uXXXX`,
//! Python's float `repr`), errors use canonical JSON (keys sorted, UTF-8 kept).

use serde_json::{Map, Number, Value};

/// How to lay out a JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Synapse's `json_encoder`: insertion order, ASCII only.
    Compact,
    /// `canonicaljson`: keys sorted, UTF-8 kept.
    Canonical,
}

/// Encodes a value in the given style.
pub fn encode(value: &Value, style: Style) -> String {
    let mut out = String::new();
    write_value(&mut out, value, style);
    out
}

fn write_value(out: &mut String, value: &Value, style: Style) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s, style == Style::Compact),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, style);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, style),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>, style: Style) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    if style == Style::Canonical {
        // canonicaljson sorts by code point, which for UTF-8 strings is byte order.
        entries.sort_by(|a, b| a.0.cmp(b.0));
    }
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key, style == Style::Compact);
        out.push(':');
        write_value(out, value, style);
    }
    out.push('}');
}

fn write_number(out: &mut String, n: &Number) {
    if n.is_f64() {
        out.push_str(&python_float_repr(n.as_f64().unwrap_or(0.0)));
    } else {
        out.push_str(&n.to_string());
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation for
/// decimal exponents in [-4, 16), scientific (`1e-05`, `1e+16`) otherwise, and
/// always a `.0` on integral values in fixed notation.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let body = if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{exp_sign}{:02}", exp.abs())
    }
}

fn write_string(out: &mut String, s: &str, ascii_only: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii_only && (c as u32) > 0x7e) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_match_python_repr() {
        // Each pair is (value, Python 3.11 repr(value)).
        let cases = [
            (0.0, "0.0"),
            (1.0, "1.0"),
            (123.0, "123.0"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e17, "1.2345e+17"),
            (2.0 / 3.0, "0.6666666666666666"),
            (12.345678901234567, "12.345678901234567"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
        ];
        for (x, expected) in cases {
            assert_eq!(python_float_repr(x), expected, "repr of {x:?}");
        }
    }

    #[test]
    fn compact_keeps_order_and_escapes_non_ascii() {
        let v = json!({"z": 1, "a": [true, null, 0.5], "é": "caf\u{e9} \u{1F600}\u{7f}\n"});
        assert_eq!(
            encode(&v, Style::Compact),
            r#"{"z":1,"a":[true,null,0.5],"\u00e9":"caf\u00e9 \ud83d\ude00\u007f\n"}"#
        );
    }

    #[test]
    fn canonical_sorts_keys_and_keeps_utf8() {
        let v = json!({"soft_logout": false, "errcode": "M_X", "error": "caf\u{e9}"});
        assert_eq!(
            encode(&v, Style::Canonical),
            "{\"errcode\":\"M_X\",\"error\":\"caf\u{e9}\",\"soft_logout\":false}"
        );
    }

    #[test]
    fn integers_stay_integers() {
        assert_eq!(
            encode(&json!({"n": 0, "m": -7}), Style::Compact),
            r#"{"n":0,"m":-7}"#
        );
        assert_eq!(encode(&json!({"n": 0.0}), Style::Compact), r#"{"n":0.0}"#);
    }
}
