//! `cmsgpack`: MessagePack for scripts, with the API and the encoding
//! choices of lua-cmsgpack as Redis ships it (`pack`, `unpack`,
//! `unpack_one`, `unpack_limit`).
//!
//! Our own codec (about 200 lines) rather than a crate such as `rmp`: the
//! byte-for-byte choices scripts observe are lua-cmsgpack's, not a generic
//! library's (a number that is an exact float32 packs as float32; strings
//! use the str8/16/32 family; a table is an array only when its keys are
//! exactly 1..n; tables nested deeper than 16 levels pack as nil), and
//! decoding must stay bounded on hostile input. The decoding of bytes lives
//! in `rampart_script_codecs::msgpack` (fuzzed without Lua or RocksDB);
//! this module turns its values into Lua tables and encodes.

use mlua::{Lua, MultiValue, Table, Value};
use rampart_script_codecs::msgpack::{Cursor, DecodeError, Decoded};

/// lua-cmsgpack's `LUACMSGPACK_MAX_NESTING`: deeper tables pack as nil.
const MAX_NESTING: usize = 16;

fn runtime(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// The `cmsgpack` table.
pub fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return Err(runtime(
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)",
                ));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                encode(lua, v, 0, &mut out)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| {
            let data = input(lua, &args, "unpack")?;
            unpack_full(lua, &data, 0, 0)
        })?,
    )?;
    t.set(
        "unpack_one",
        lua.create_function(|lua, args: MultiValue| {
            let data = input(lua, &args, "unpack_one")?;
            let offset = opt_integer(lua, &args, 1, "unpack_one")?;
            unpack_full(lua, &data, 1, offset)
        })?,
    )?;
    t.set(
        "unpack_limit",
        lua.create_function(|lua, args: MultiValue| {
            let data = input(lua, &args, "unpack_limit")?;
            let limit = match args.get(1) {
                Some(v) => lua.coerce_number(v.clone())?,
                None => None,
            }
            .ok_or_else(|| {
                runtime("bad argument #2 to 'unpack_limit' (number expected, got no value)")
            })?;
            let offset = opt_integer(lua, &args, 2, "unpack_limit")?;
            unpack_full(lua, &data, limit as i64, offset)
        })?,
    )?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

fn input(lua: &Lua, args: &MultiValue, name: &str) -> mlua::Result<Vec<u8>> {
    let first = args.front().cloned().unwrap_or(Value::Nil);
    let got = if args.is_empty() {
        "no value"
    } else {
        first.type_name()
    };
    match lua.coerce_string(first)? {
        Some(s) => Ok(s.as_bytes().to_vec()),
        None => Err(runtime(format!(
            "bad argument #1 to '{name}' (string expected, got {got})"
        ))),
    }
}

fn opt_integer(lua: &Lua, args: &MultiValue, i: usize, name: &str) -> mlua::Result<i64> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(0),
        Some(v) => match lua.coerce_number(v.clone())? {
            Some(n) => Ok(n as i64),
            None => Err(runtime(format!(
                "bad argument #{} to '{name}' (number expected, got {})",
                i + 1,
                v.type_name()
            ))),
        },
    }
}

// ---- encoding ----

fn encode(lua: &Lua, v: &Value, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(*i, out),
        Value::Number(n) => encode_number(*n, out),
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Table(t) if level < MAX_NESTING => encode_table(lua, t, level, out)?,
        // nil, functions, userdata, threads, tables past the nesting limit.
        _ => out.push(0xc0),
    }
    Ok(())
}

/// lua-cmsgpack: a number equal to an int64 packs as the smallest integer
/// encoding, else as float32 when exact, else float64.
fn encode_number(n: f64, out: &mut Vec<u8>) {
    if n.is_finite()
        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n)
        && n.fract() == 0.0
    {
        encode_int(n as i64, out);
        return;
    }
    let f = n as f32;
    if f64::from(f) == n {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        let u = i as u64;
        if u <= 127 {
            out.push(u as u8);
        } else if u <= 0xff {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= -128 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn encode_len(len: usize, fix: u8, fix_max: usize, tags: [u8; 3], out: &mut Vec<u8>) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if tags[0] != 0 && len <= 0xff {
        out.extend_from_slice(&[tags[0], len as u8]);
    } else if len <= 0xffff {
        out.push(tags[1]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(tags[2]);
        out.extend_from_slice(&(len.min(u32::MAX as usize) as u32).to_be_bytes());
    }
}

fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    encode_len(s.len(), 0xa0, 31, [0xd9, 0xda, 0xdb], out);
    out.extend_from_slice(s);
}

/// lua-cmsgpack's `table_is_an_array`: every key is a positive integral
/// number (strings that convert included, as `lua_isnumber` says) and the
/// largest equals the count.
fn is_array(lua: &Lua, t: &Table) -> mlua::Result<bool> {
    let mut count = 0f64;
    let mut max = 0f64;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match &k {
            Value::Integer(i) => *i as f64,
            Value::Number(n) => *n,
            Value::String(_) => match lua.coerce_number(k.clone())? {
                Some(n) => n,
                None => return Ok(false),
            },
            _ => return Ok(false),
        };
        if n <= 0.0 || n.fract() != 0.0 || !n.is_finite() {
            return Ok(false);
        }
        max = max.max(n);
        count += 1.0;
    }
    Ok(max == count)
}

fn encode_table(lua: &Lua, t: &Table, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    if is_array(lua, t)? {
        let len = t.raw_len();
        encode_len(len, 0x90, 15, [0, 0xdc, 0xdd], out);
        for i in 1..=len {
            encode(lua, &t.raw_get::<Value>(i)?, level + 1, out)?;
        }
    } else {
        let mut pairs = Vec::new();
        for pair in t.clone().pairs::<Value, Value>() {
            pairs.push(pair?);
        }
        encode_len(pairs.len(), 0x80, 15, [0, 0xde, 0xdf], out);
        for (k, v) in &pairs {
            encode(lua, k, level + 1, out)?;
            encode(lua, v, level + 1, out)?;
        }
    }
    Ok(())
}

// ---- decoding (the bytes part lives in `rampart_script_codecs`) ----

fn to_lua(lua: &Lua, d: Decoded) -> mlua::Result<Value> {
    Ok(match d {
        Decoded::Nil => Value::Nil,
        Decoded::Bool(b) => Value::Boolean(b),
        Decoded::Number(n) => Value::Number(n),
        Decoded::Bytes(b) => Value::String(lua.create_string(&b)?),
        Decoded::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        Decoded::Map(items) => {
            let t = lua.create_table_with_capacity(0, items.len())?;
            for (k, v) in items {
                let key = to_lua(lua, k)?;
                match &key {
                    Value::Nil => return Err(runtime("table index is nil")),
                    Value::Number(n) if n.is_nan() => return Err(runtime("table index is NaN")),
                    _ => {}
                }
                t.raw_set(key, to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

/// lua-cmsgpack's `mp_unpack_full`: decodes up to `limit` objects from
/// `offset` (0 and 0: every object, without the offset result). Otherwise
/// the first result is the offset of the next object, or -1 at the end.
fn unpack_full(lua: &Lua, data: &[u8], limit: i64, offset: i64) -> mlua::Result<MultiValue> {
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(runtime(format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            data.len()
        )));
    }
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if start > data.len() {
        return Err(runtime(format!(
            "Start offset {offset} greater than input length {}.",
            data.len()
        )));
    }
    let limit = if decode_all { i64::MAX } else { limit };
    let rest = &data[start..];
    let mut c = Cursor::new(rest);
    let mut values = Vec::new();
    let mut count = 0i64;
    while !c.at_end() && count < limit {
        match c.next_value() {
            Ok(d) => values.push(to_lua(lua, d)?),
            Err(DecodeError::Eof) => return Err(runtime("Missing bytes in input.")),
            Err(DecodeError::BadFormat) => return Err(runtime("Bad data format in input.")),
        }
        count += 1;
    }
    if !decode_all {
        let next = if c.at_end() {
            -1.0
        } else {
            (start + c.position()) as f64
        };
        values.insert(0, Value::Number(next));
    }
    Ok(MultiValue::from_iter(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.globals()
            .set("cmsgpack", cmsgpack(&lua).expect("cmsgpack"))
            .expect("set");
        lua
    }

    fn hex(lua: &Lua, code: &str) -> String {
        let s: mlua::String = lua.load(code).eval().expect(code);
        s.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn packs_like_lua_cmsgpack() {
        let lua = lua();
        for (code, want) in [
            ("return cmsgpack.pack(1)", "01"),
            ("return cmsgpack.pack(-1)", "ff"),
            ("return cmsgpack.pack(-33)", "d0df"),
            ("return cmsgpack.pack(200)", "ccc8"),
            ("return cmsgpack.pack(65536)", "ce00010000"),
            ("return cmsgpack.pack(2^40)", "cf0000010000000000"),
            ("return cmsgpack.pack(-2^40)", "d3ffffff0000000000"),
            ("return cmsgpack.pack(1.5)", "ca3fc00000"),
            ("return cmsgpack.pack(0.1)", "cb3fb999999999999a"),
            ("return cmsgpack.pack('abc')", "a3616263"),
            (
                "return cmsgpack.pack(string.rep('x', 40)):sub(1, 2)",
                "d928",
            ),
            ("return cmsgpack.pack(nil, true, false)", "c0c3c2"),
            ("return cmsgpack.pack({})", "90"),
            ("return cmsgpack.pack({1, 2, 3})", "93010203"),
            ("return cmsgpack.pack({a = 1})", "81a16101"),
            ("return cmsgpack.pack({[1] = 1, [3] = 3})", "820101"),
        ] {
            let got = hex(&lua, code);
            assert!(got.starts_with(want), "{code}: {got} (want {want})");
        }
    }

    #[test]
    fn round_trips_and_nesting_limit() {
        let lua = lua();
        let ok: bool = lua
            .load(
                r#"
                local t = {1, "two", {x = 3.25, y = {true, false}}, -70000, 2^53}
                local back = cmsgpack.unpack(cmsgpack.pack(t))
                return back[1] == 1 and back[2] == "two" and back[3].x == 3.25
                  and back[3].y[1] == true and back[3].y[2] == false
                  and back[4] == -70000 and back[5] == 2^53
                "#,
            )
            .eval()
            .expect("round trip");
        assert!(ok);
        // A cycle packs, cut at 16 levels.
        let depth: i64 = lua
            .load(
                r#"
                local t = {} t[1] = t
                local v = cmsgpack.unpack(cmsgpack.pack(t))
                local d = 0
                while type(v) == "table" do d = d + 1 v = v[1] end
                return d
                "#,
            )
            .eval()
            .expect("cycle");
        assert_eq!(depth, 16);
    }

    #[test]
    fn unpack_one_and_limit_return_offsets() {
        let lua = lua();
        let out: (i64, i64, i64, i64, i64) = lua
            .load(
                r#"
                local s = cmsgpack.pack(1, 2, 3)
                local o1, a = cmsgpack.unpack_one(s)
                local o2, b, c = cmsgpack.unpack_limit(s, 2, o1)
                return o1, a, o2, b + c, select('#', cmsgpack.unpack(s))
                "#,
            )
            .eval()
            .expect("offsets");
        assert_eq!(out, (1, 1, -1, 5, 3));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let lua = lua();
        for (code, want) in [
            (
                "return cmsgpack.unpack('\\147\\1')",
                "Missing bytes in input.",
            ),
            (
                "return cmsgpack.unpack('\\193')",
                "Bad data format in input.",
            ),
            (
                "return cmsgpack.unpack('\\221\\255\\255\\255\\255')",
                "Missing bytes",
            ),
            (
                "return cmsgpack.unpack(string.rep('\\145', 5000))",
                "Bad data format",
            ),
            (
                "return cmsgpack.unpack('\\129\\192\\1')",
                "table index is nil",
            ),
            (
                "return cmsgpack.unpack_one('\\1', 5)",
                "Start offset 5 greater",
            ),
            (
                "return cmsgpack.pack()",
                "bad argument #0 to 'pack' (MessagePack pack needs input.)",
            ),
        ] {
            let err = lua.load(code).eval::<Value>().expect_err(code).to_string();
            assert!(err.contains(want), "{code}: {err}");
        }
    }
}
