//! The libraries Redis ships in its Lua environment that Lua 5.1 itself
//! lacks, written in Rust: `cjson` (on serde_json) and `bit` (LuaBitOp's
//! API). `cmsgpack` and `struct` have their own modules.

use mlua::{Lua, Table, Value, Variadic};

use rampart_script_codecs::json::{self, MAX_DEPTH};

fn runtime(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// `cjson.encode`, `cjson.decode`, `cjson.null`.
pub fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|_, v: Value| {
            let json = to_json(&v, 0)?;
            serde_json::to_string(&json).map_err(|e| runtime(format!("cjson.encode: {e}")))
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: mlua::String| {
            let json = json::decode(&s.as_bytes()).map_err(|e| runtime(e.0))?;
            from_json(lua, &json, 0)
        })?,
    )?;
    t.set("null", Value::NULL)?;
    Ok(t)
}

fn number_json(n: f64) -> mlua::Result<serde_json::Value> {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return Ok(serde_json::Value::from(n as i64));
    }
    serde_json::Number::from_f64(n)
        .map(serde_json::Value::Number)
        .ok_or_else(|| runtime("Cannot serialise number: must not be NaN or Inf"))
}

fn to_json(v: &Value, depth: usize) -> mlua::Result<serde_json::Value> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(runtime("Cannot serialise, excessive nesting (1001)"));
    }
    Ok(match v {
        Value::Nil => J::Null,
        Value::LightUserData(p) if p.0.is_null() => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => J::from(*i),
        Value::Number(n) => number_json(*n)?,
        Value::String(s) => J::String(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Table(t) => {
            let len = t.raw_len();
            let mut count = 0usize;
            let mut array_like = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                let index = match k {
                    Value::Integer(i) => Some(i as f64),
                    Value::Number(n) => Some(n),
                    _ => None,
                };
                if !index.is_some_and(|i| i >= 1.0 && i.fract() == 0.0 && i <= len as f64) {
                    array_like = false;
                }
            }
            if array_like && count == len && len > 0 {
                let mut items = Vec::with_capacity(len);
                for i in 1..=len {
                    items.push(to_json(&t.raw_get::<Value>(i)?, depth + 1)?);
                }
                J::Array(items)
            } else {
                let mut map = serde_json::Map::new();
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, val) = pair?;
                    let key = match &k {
                        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => match number_json(*n)? {
                            serde_json::Value::Number(n) => n.to_string(),
                            _ => continue,
                        },
                        _ => {
                            return Err(runtime(
                                "Cannot serialise table: table key must be a number or string",
                            ))
                        }
                    };
                    map.insert(key, to_json(&val, depth + 1)?);
                }
                J::Object(map)
            }
        }
        other => {
            return Err(runtime(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )))
        }
    })
}

fn from_json(lua: &Lua, j: &serde_json::Value, depth: usize) -> mlua::Result<Value> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(runtime("Found too many nested data structures"));
    }
    Ok(match j {
        J::Null => Value::NULL,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, from_json(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
        J::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                t.raw_set(k.as_str(), from_json(lua, v, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}

/// LuaBitOp's normalisation of a number to a signed 32-bit integer.
fn tobit(n: f64) -> i32 {
    if !n.is_finite() {
        return 0;
    }
    // Wraps modulo 2^32 like LuaBitOp on integral inputs.
    (n.trunc().rem_euclid(4_294_967_296.0) as u64 as u32) as i32
}

fn arg(v: &Value) -> mlua::Result<i32> {
    match v {
        Value::Integer(i) => Ok(tobit(*i as f64)),
        Value::Number(n) => Ok(tobit(*n)),
        Value::String(s) => std::str::from_utf8(&s.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map(tobit)
            .ok_or_else(|| runtime("bad argument to bit operation (number expected)")),
        _ => Err(runtime("bad argument to bit operation (number expected)")),
    }
}

/// `bit.tobit`, `tohex`, `bnot`, `band`, `bor`, `bxor`, `lshift`,
/// `rshift`, `arshift`, `rol`, `ror`, `bswap`.
pub fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "tobit",
        lua.create_function(|_, v: Value| Ok(arg(&v)? as f64))?,
    )?;
    t.set(
        "bnot",
        lua.create_function(|_, v: Value| Ok(!arg(&v)? as f64))?,
    )?;
    for (name, op) in [
        ("band", (|a, b| a & b) as fn(i32, i32) -> i32),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ] {
        t.set(
            name,
            lua.create_function(move |_, args: Variadic<Value>| {
                let mut it = args.iter();
                let first = it
                    .next()
                    .ok_or_else(|| runtime("bad argument #1 (number expected, got no value)"))?;
                let mut acc = arg(first)?;
                for v in it {
                    acc = op(acc, arg(v)?);
                }
                Ok(acc as f64)
            })?,
        )?;
    }
    for (name, op) in [
        (
            "lshift",
            (|x: i32, n: u32| ((x as u32) << n) as i32) as fn(i32, u32) -> i32,
        ),
        ("rshift", |x, n| ((x as u32) >> n) as i32),
        ("arshift", |x, n| x >> n),
        ("rol", |x, n| (x as u32).rotate_left(n) as i32),
        ("ror", |x, n| (x as u32).rotate_right(n) as i32),
    ] {
        t.set(
            name,
            lua.create_function(move |_, (x, n): (Value, Value)| {
                let shift = (arg(&n)? as u32) & 31;
                Ok(op(arg(&x)?, shift) as f64)
            })?,
        )?;
    }
    t.set(
        "bswap",
        lua.create_function(|_, v: Value| Ok(arg(&v)?.swap_bytes() as f64))?,
    )?;
    t.set(
        "tohex",
        lua.create_function(|_, (v, n): (Value, Option<Value>)| {
            let x = arg(&v)? as u32;
            let n = match n {
                Some(n) => arg(&n)?,
                None => 8,
            };
            let upper = n < 0;
            let digits = n.unsigned_abs().clamp(1, 8) as usize;
            let masked = if digits == 8 {
                x
            } else {
                x & ((1u32 << (4 * digits)) - 1)
            };
            Ok(if upper {
                format!("{masked:0digits$X}")
            } else {
                format!("{masked:0digits$x}")
            })
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tobit_wraps_like_luabitop() {
        assert_eq!(tobit(0xffff_ffff_u32 as f64), -1);
        assert_eq!(tobit(4_294_967_296.0), 0);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(7.9), 7);
    }
}
