//! Typed request fields, as Vault's `framework.FieldSchema`: every route
//! declares the fields it takes and their types; one decoder coerces the
//! way Vault does (`"3"` → 3, `"true"` → true, `"1h"` → 3600 s) and refuses,
//! with a 400, a field the route does not take, a value of the wrong type,
//! a missing required field, and an unsupported option set to anything but
//! its off value. No handler reads raw JSON.

use crate::error::Error;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A field's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A string (a number is taken as its decimal text).
    Str,
    /// A signed integer (a JSON integer, or a decimal string).
    Int,
    /// A boolean (JSON, or `true`/`false`/`1`/`0`/`t`/`f` in any case Go
    /// accepts, or an integer: non-zero is true).
    Bool,
    /// Seconds: an integer, or a duration string (`90s`, `15m`, `1h30m`,
    /// `1.5h`, `7d`).
    Duration,
    /// A list of strings, or one comma-separated string.
    StrList,
    /// A JSON object, any values.
    Map,
    /// A JSON object whose values are strings.
    StrMap,
    /// Any JSON value.
    Any,
    /// A list of JSON objects (`batch_input`).
    Objects,
    /// An option citadel does not support: accepted only when absent,
    /// null, or its off value (`false`, `0`, `""`, `[]`, `{}`); the text
    /// says why it is refused.
    Unsupported(&'static str),
}

/// One declared field.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Its name in the request.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Whether a request without it is refused.
    pub required: bool,
}

impl Field {
    /// An optional field.
    pub const fn opt(name: &'static str, ty: Ty) -> Self {
        Self {
            name,
            ty,
            required: false,
        }
    }

    /// A required field.
    pub const fn req(name: &'static str, ty: Ty) -> Self {
        Self {
            name,
            ty,
            required: true,
        }
    }
}

/// A decoded value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// [`Ty::Str`].
    Str(String),
    /// [`Ty::Int`].
    Int(i64),
    /// [`Ty::Bool`].
    Bool(bool),
    /// [`Ty::Duration`], seconds.
    Secs(u64),
    /// [`Ty::StrList`].
    List(Vec<String>),
    /// [`Ty::Map`], [`Ty::StrMap`], [`Ty::Any`].
    Json(Value),
    /// [`Ty::Objects`].
    Objects(Vec<Map<String, Value>>),
}

/// The decoded fields of one request (or one batch item).
#[derive(Clone, Debug, Default)]
pub struct Fields {
    values: BTreeMap<&'static str, Val>,
}

fn type_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Str => "a string",
        Ty::Int => "an integer",
        Ty::Bool => "a boolean",
        Ty::Duration => "a duration (seconds, or text such as \"1h30m\")",
        Ty::StrList => "a list of strings or a comma-separated string",
        Ty::Map => "an object",
        Ty::StrMap => "an object of strings",
        Ty::Any => "a value",
        Ty::Objects => "a list of objects",
        Ty::Unsupported(_) => "absent",
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// An integer as [`Ty::Int`] takes it (for values inside objects, such as
/// KV's `options.cas`).
pub fn parse_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parses a duration as Vault's `ParseDurationSecond`: an integer is
/// seconds; otherwise a sequence of numbers with units `ns`, `us`, `ms`,
/// `s`, `m`, `h` or `d` (fractions allowed). Sub-second parts are dropped.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut nanos: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += n * scale;
    }
    let secs = nanos / 1e9;
    (secs.is_finite() && secs < 1e15).then_some(secs as u64)
}

/// Whether a value is an option's off value (`null`, `false`, `0`, `""`,
/// `"0s"`, `[]`, `{}`).
pub fn is_off(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => {
            s.is_empty() || parse_bool(s) == Some(false) || parse_duration(s) == Some(0)
        }
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn coerce(name: &str, ty: Ty, v: &Value) -> Result<Val, Error> {
    let wrong = || {
        Error::bad(format!(
            "field {name:?} must be {}; got {}",
            type_name(ty),
            match v {
                Value::String(_) => "a string that does not parse",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "a list",
                Value::Object(_) => "an object",
                Value::Null => "null",
            }
        ))
    };
    Ok(match ty {
        Ty::Str => match v {
            Value::String(s) => Val::Str(s.clone()),
            Value::Number(n) => Val::Str(n.to_string()),
            _ => return Err(wrong()),
        },
        Ty::Int => Val::Int(parse_int(v).ok_or_else(wrong)?),
        Ty::Bool => Val::Bool(match v {
            Value::Bool(b) => *b,
            Value::String(s) => parse_bool(s.trim()).ok_or_else(wrong)?,
            Value::Number(_) => parse_int(v).ok_or_else(wrong)? != 0,
            _ => return Err(wrong()),
        }),
        Ty::Duration => Val::Secs(match v {
            Value::Number(_) => {
                u64::try_from(parse_int(v).ok_or_else(wrong)?).map_err(|_| wrong())?
            }
            Value::String(s) => parse_duration(s).ok_or_else(wrong)?,
            _ => return Err(wrong()),
        }),
        Ty::StrList => Val::List(match v {
            Value::String(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
            Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.trim().to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(wrong()),
                })
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect(),
            _ => return Err(wrong()),
        }),
        Ty::Map => match v {
            Value::Object(_) => Val::Json(v.clone()),
            _ => return Err(wrong()),
        },
        Ty::StrMap => match v {
            Value::Object(o) if o.values().all(Value::is_string) => Val::Json(v.clone()),
            _ => return Err(wrong()),
        },
        Ty::Any => Val::Json(v.clone()),
        Ty::Objects => match v {
            Value::Array(a) => Val::Objects(
                a.iter()
                    .map(|x| x.as_object().cloned().ok_or_else(wrong))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(wrong()),
        },
        Ty::Unsupported(why) => {
            if is_off(v) {
                Val::Bool(false)
            } else {
                return Err(Error::bad(format!("{name}: {why}")));
            }
        }
    })
}

impl Fields {
    /// Decodes `data` against `spec`.
    pub fn decode(spec: &[Field], data: &Map<String, Value>) -> Result<Self, Error> {
        let mut values = BTreeMap::new();
        let mut unknown: Vec<&str> = Vec::new();
        for (k, v) in data {
            let Some(f) = spec.iter().find(|f| f.name == k) else {
                unknown.push(k);
                continue;
            };
            if v.is_null() {
                continue;
            }
            let val = coerce(f.name, f.ty, v)?;
            if !matches!(f.ty, Ty::Unsupported(_)) {
                values.insert(f.name, val);
            }
        }
        if !unknown.is_empty() {
            let mut known: Vec<&str> = spec
                .iter()
                .filter(|f| !matches!(f.ty, Ty::Unsupported(_)))
                .map(|f| f.name)
                .collect();
            known.sort_unstable();
            return Err(Error::bad(format!(
                "unknown field{} {}: this endpoint takes {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|u| format!("{u:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if known.is_empty() {
                    "no fields".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        if let Some(f) = spec
            .iter()
            .find(|f| f.required && !values.contains_key(f.name))
        {
            return Err(Error::bad(format!("missing required field {:?}", f.name)));
        }
        Ok(Self { values })
    }

    /// Whether the request set the field.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A string field.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer field.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Val::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// A non-negative integer field; a negative value is refused.
    pub fn uint(&self, name: &str) -> Result<Option<u64>, Error> {
        self.int(name)
            .map(|n| {
                u64::try_from(n)
                    .map_err(|_| Error::bad(format!("field {name:?} must not be negative")))
            })
            .transpose()
    }

    /// A boolean field.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(Val::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A duration field, in seconds.
    pub fn secs(&self, name: &str) -> Option<u64> {
        match self.values.get(name) {
            Some(Val::Secs(s)) => Some(*s),
            _ => None,
        }
    }

    /// A string-list field.
    pub fn list(&self, name: &str) -> Option<&[String]> {
        match self.values.get(name) {
            Some(Val::List(l)) => Some(l),
            _ => None,
        }
    }

    /// A JSON field (object or any).
    pub fn json(&self, name: &str) -> Option<&Value> {
        match self.values.get(name) {
            Some(Val::Json(v)) => Some(v),
            _ => None,
        }
    }

    /// An object-list field.
    pub fn objects(&self, name: &str) -> Option<&[Map<String, Value>]> {
        match self.values.get(name) {
            Some(Val::Objects(o)) => Some(o),
            _ => None,
        }
    }
}

/// Parses a request body: empty means `{}`; anything else must be a JSON
/// object with at most `max_values` values in all (objects, lists and
/// scalars counted), and no key twice in one object. The bound is checked
/// while parsing, so a small body of many tiny items cannot make the
/// server build a huge tree.
pub fn parse_body(body: &[u8], max_values: usize) -> Result<Map<String, Value>, Error> {
    use serde::de::DeserializeSeed;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let budget = std::cell::Cell::new(max_values);
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Capped(&budget)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Error::bad(format!("failed to parse JSON input: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        // What `vault write -f` sends.
        Value::Null => Ok(Map::new()),
        _ => Err(Error::bad(
            "failed to parse JSON input: the body must be a JSON object",
        )),
    }
}

/// A JSON value parsed within a budget of values.
struct Capped<'a>(&'a std::cell::Cell<usize>);

impl Capped<'_> {
    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.0.get() {
            0 => Err(E::custom("the body holds too many JSON values")),
            n => {
                self.0.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Capped<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Capped<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.take()?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Capped(self.0))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        use serde::de::Error as _;
        self.take()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Capped(self.0))?;
            if out.insert(k.clone(), v).is_some() {
                return Err(A::Error::custom(format!("key {k:?} is given twice")));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_bounded_while_parsing() {
        assert!(parse_body(b"  ", 10).unwrap().is_empty());
        assert_eq!(
            parse_body(br#"{"a": [1, 2]}"#, 4).unwrap()["a"],
            json!([1, 2])
        );
        assert!(parse_body(br#"{"a": [1, 2]}"#, 3).is_err());
        let many = format!("{{\"batch_input\": [{}]}}", vec!["{}"; 100_000].join(","));
        let e = parse_body(many.as_bytes(), 10_000).unwrap_err().to_string();
        assert!(e.contains("too many JSON values"), "{e}");
        assert!(
            parse_body(br#"{"a": 1, "a": 2}"#, 10)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(parse_body(b"[1]", 10).is_err());
        assert!(parse_body(b"{} {}", 10).is_err());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(
            parse_body(deep.as_bytes(), 10_000).is_err(),
            "serde_json's depth limit"
        );
    }

    const SPEC: &[Field] = &[
        Field::opt("min_decryption_version", Ty::Int),
        Field::opt("deletion_allowed", Ty::Bool),
        Field::opt("ttl", Ty::Duration),
        Field::opt("policies", Ty::StrList),
        Field::req("name", Ty::Str),
        Field::opt("derived", Ty::Unsupported("derived keys are not supported")),
        Field::opt("batch_input", Ty::Objects),
    ];

    fn decode(v: Value) -> Result<Fields, String> {
        Fields::decode(SPEC, v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn coerces_as_vault_and_refuses_the_rest() {
        // What the Vault CLI sends: everything as strings.
        let f = decode(json!({"name": "k", "min_decryption_version": "3",
            "deletion_allowed": "true", "ttl": "1h30m", "policies": "a, b,,c"}))
        .unwrap();
        assert_eq!(f.int("min_decryption_version"), Some(3));
        assert_eq!(f.bool("deletion_allowed"), Some(true));
        assert_eq!(f.secs("ttl"), Some(5400));
        assert_eq!(f.list("policies").unwrap(), ["a", "b", "c"]);
        let f = decode(
            json!({"name": 7, "min_decryption_version": 3.0, "deletion_allowed": 0,
            "ttl": 90, "policies": ["x"], "derived": "false"}),
        )
        .unwrap();
        assert_eq!(f.str("name"), Some("7"));
        assert_eq!(f.bool("deletion_allowed"), Some(false));
        assert!(!f.has("derived"));
        // Refused, never ignored.
        for (body, want) in [
            (
                json!({"name": "k", "min_decryption_version": "three"}),
                "must be an integer",
            ),
            (
                json!({"name": "k", "min_decryption_version": 3.5}),
                "must be an integer",
            ),
            (
                json!({"name": "k", "deletion_allowed": "yes"}),
                "must be a boolean",
            ),
            (json!({"name": "k", "ttl": "-5s"}), "must be a duration"),
            (
                json!({"name": "k", "derived": "true"}),
                "derived keys are not supported",
            ),
            (
                json!({"name": "k", "derived": 1}),
                "derived keys are not supported",
            ),
            (
                json!({"name": "k", "plain_text": "x"}),
                "unknown field \"plain_text\"",
            ),
            (
                json!({"min_decryption_version": 1}),
                "missing required field \"name\"",
            ),
            (
                json!({"name": "k", "batch_input": {"a": 1}}),
                "must be a list of objects",
            ),
            (
                json!({"name": "k", "batch_input": [null]}),
                "must be a list of objects",
            ),
            (json!({"name": ["k"]}), "must be a string"),
        ] {
            let e = decode(body.clone()).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        // Null is absent.
        assert!(
            !decode(json!({"name": "k", "ttl": null}))
                .unwrap()
                .has("ttl")
        );
    }

    #[test]
    fn durations_as_go_parses_them() {
        for (s, want) in [
            ("0", Some(0)),
            ("45", Some(45)),
            ("90s", Some(90)),
            ("15m", Some(900)),
            ("2h", Some(7200)),
            ("1h30m", Some(5400)),
            ("1.5h", Some(5400)),
            ("7d", Some(604_800)),
            ("1500ms", Some(1)),
            ("", Some(0)),
            ("h", None),
            ("5x", None),
            ("-1s", None),
            ("1e400h", None),
        ] {
            assert_eq!(parse_duration(s), want, "{s}");
        }
    }
}
